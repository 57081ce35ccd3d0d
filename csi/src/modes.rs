//! Kubernetes' access modes as CSI names them, and the export access modes they are.

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
}
