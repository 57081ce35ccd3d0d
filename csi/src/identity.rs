//! The identity service: the driver's name and version, whether it has a controller, ready.

use tonic::{Request, Response, Status};

use crate::spec::plugin_capability::{service, Service, Type};
use crate::spec::{self, PluginCapability};

/// The identity service.
pub(crate) struct Identity {
    /// The controller service is served too.
    pub(crate) controller: bool,
}

#[tonic::async_trait]
impl spec::identity_server::Identity for Identity {
    async fn get_plugin_info(
        &self,
        _: Request<spec::GetPluginInfoRequest>,
    ) -> Result<Response<spec::GetPluginInfoResponse>, Status> {
        Ok(Response::new(spec::GetPluginInfoResponse {
            name: crate::DRIVER_NAME.into(),
            vendor_version: env!("CARGO_PKG_VERSION").into(),
            manifest: Default::default(),
        }))
    }

    async fn get_plugin_capabilities(
        &self,
        _: Request<spec::GetPluginCapabilitiesRequest>,
    ) -> Result<Response<spec::GetPluginCapabilitiesResponse>, Status> {
        let capabilities = match self.controller {
            true => vec![PluginCapability {
                r#type: Some(Type::Service(Service {
                    r#type: service::Type::ControllerService as i32,
                })),
            }],
            false => Vec::new(),
        };
        Ok(Response::new(spec::GetPluginCapabilitiesResponse {
            capabilities,
        }))
    }

    async fn probe(
        &self,
        _: Request<spec::ProbeRequest>,
    ) -> Result<Response<spec::ProbeResponse>, Status> {
        Ok(Response::new(spec::ProbeResponse { ready: Some(true) }))
    }
}
