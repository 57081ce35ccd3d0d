//! Kubernetes' access modes as CSI names them, and the export access modes they are.

use std::collections::HashMap;

use protocol::AccessMode;
use tonic::Status;

use crate::spec::volume_capability::access_mode::Mode;
use crate::spec::volume_capability::AccessType;
use crate::spec::VolumeCapability;

/// The export mode one capability asks for, as Kubernetes maps them: RWX is
/// MULTI_NODE_MULTI_WRITER, ROX MULTI_NODE_READER_ONLY, RWO SINGLE_NODE_WRITER (or
/// SINGLE_NODE_MULTI_WRITER; SINGLE_NODE_READER_ONLY is RWO read), RWOP
/// SINGLE_NODE_SINGLE_WRITER. Block volumes and MULTI_NODE_SINGLE_WRITER are not offered,
/// nor a file system type or mount flag the driver does not know (`asked`).
pub(crate) fn mode_of(cap: &VolumeCapability) -> Result<AccessMode, Status> {
    if let Some(AccessType::Block(_)) = cap.access_type {
        return Err(Status::invalid_argument(
            "rwxfs volumes are file systems: block access is not supported",
        ));
    }
    crate::asked::check(cap)?;
    let mode =
        cap.access_mode.as_ref().map(|m| m.mode).ok_or_else(|| {
            Status::invalid_argument("a volume capability without an access mode")
        })?;
    match Mode::try_from(mode) {
        Ok(Mode::MultiNodeMultiWriter) => Ok(AccessMode::Rwx),
        Ok(Mode::MultiNodeReaderOnly) => Ok(AccessMode::Rox),
        Ok(Mode::SingleNodeWriter | Mode::SingleNodeMultiWriter | Mode::SingleNodeReaderOnly) => {
            Ok(AccessMode::Rwo)
        }
        Ok(Mode::SingleNodeSingleWriter) => Ok(AccessMode::Rwop),
        Ok(m @ (Mode::MultiNodeSingleWriter | Mode::Unknown)) => Err(Status::invalid_argument(
            format!("access mode {} is not supported", m.as_str_name()),
        )),
        Err(_) => Err(Status::invalid_argument(format!(
            "unknown access mode {mode}"
        ))),
    }
}

/// The one export mode every capability of a request asks for.
pub(crate) fn mode_of_all(caps: &[VolumeCapability]) -> Result<AccessMode, Status> {
    let mut modes = caps.iter().map(mode_of);
    let first = modes
        .next()
        .ok_or_else(|| Status::invalid_argument("no volume capabilities"))??;
    for m in modes {
        if m? != first {
            return Err(Status::invalid_argument(
                "volume capabilities ask for more than one access mode",
            ));
        }
    }
    Ok(first)
}

/// The export mode a CreateVolume asks for, within what its StorageClass admits: a class
/// with the parameter `accessMode` provisions volumes of that mode only, and a claim of
/// another mode is refused (it stays Pending, the reason in its events).
pub(crate) fn mode_for(
    caps: &[VolumeCapability],
    params: &HashMap<String, String>,
) -> Result<AccessMode, Status> {
    let mode = mode_of_all(caps)?;
    let Some(class) = params.get(crate::ACCESS_MODE_PARAM) else {
        return Ok(mode);
    };
    let class: AccessMode = class.parse().map_err(|e| {
        Status::invalid_argument(format!(
            "StorageClass parameter {}: {e}",
            crate::ACCESS_MODE_PARAM
        ))
    })?;
    match class == mode {
        true => Ok(mode),
        false => Err(Status::invalid_argument(format!(
            "this StorageClass provisions {class} volumes only; the claim asks for {mode}"
        ))),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::spec::volume_capability::{AccessMode as CapMode, BlockVolume, MountVolume};

    fn cap(mode: Mode, block: bool) -> VolumeCapability {
        VolumeCapability {
            access_mode: Some(CapMode { mode: mode as i32 }),
            access_type: Some(match block {
                true => AccessType::Block(BlockVolume {}),
                false => AccessType::Mount(MountVolume::default()),
            }),
        }
    }

    #[test]
    fn kubernetes_modes_map_to_export_modes() {
        let m = |mode| mode_of(&cap(mode, false)).ok();
        assert_eq!(m(Mode::MultiNodeMultiWriter), Some(AccessMode::Rwx));
        assert_eq!(m(Mode::MultiNodeReaderOnly), Some(AccessMode::Rox));
        assert_eq!(m(Mode::SingleNodeWriter), Some(AccessMode::Rwo));
        assert_eq!(m(Mode::SingleNodeMultiWriter), Some(AccessMode::Rwo));
        assert_eq!(m(Mode::SingleNodeSingleWriter), Some(AccessMode::Rwop));
        assert_eq!(m(Mode::MultiNodeSingleWriter), None);
        assert!(mode_of(&cap(Mode::MultiNodeMultiWriter, true)).is_err());
        let two = [
            cap(Mode::MultiNodeMultiWriter, false),
            cap(Mode::SingleNodeWriter, false),
        ];
        assert!(mode_of_all(&two).is_err());
        assert!(mode_of_all(&[]).is_err());
    }

    #[test]
    fn a_class_with_an_access_mode_admits_claims_of_that_mode_only() {
        let class =
            |m: &str| HashMap::from([(crate::ACCESS_MODE_PARAM.to_string(), m.to_string())]);
        let rwx = [cap(Mode::MultiNodeMultiWriter, false)];
        let rwop = [cap(Mode::SingleNodeSingleWriter, false)];
        assert_eq!(mode_for(&rwx, &class("rwx")).ok(), Some(AccessMode::Rwx));
        assert_eq!(mode_for(&rwop, &class("rwop")).ok(), Some(AccessMode::Rwop));
        assert_eq!(mode_for(&rwx, &HashMap::new()).ok(), Some(AccessMode::Rwx));
        let refused = mode_for(&rwx, &class("rwop")).unwrap_err();
        assert_eq!(refused.code(), tonic::Code::InvalidArgument);
        assert!(refused.message().contains("rwop"), "{}", refused.message());
        let bad = mode_for(&rwx, &class("many")).unwrap_err();
        assert_eq!(bad.code(), tonic::Code::InvalidArgument);
        assert!(
            bad.message().contains(crate::ACCESS_MODE_PARAM),
            "{}",
            bad.message()
        );
    }
}
