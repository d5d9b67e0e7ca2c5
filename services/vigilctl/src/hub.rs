//! The one way a command talks to the hub: connect with the stored pairing
//! credentials, then ask. Every refusal becomes an [`Error`] here, with
//! the hub's address for the message, so no handler maps a status itself.

use tonic::transport::Channel;
use vigil_proto::v1::admin_service_client::AdminServiceClient;
use vigil_proto::v1::alarm_service_client::AlarmServiceClient;
use vigil_proto::v1::camera_service_client::CameraServiceClient;
use vigil_proto::v1::report_service_client::ReportServiceClient;

use crate::error::Error;
use crate::remote::{self, Credentials};

/// A connection to the hub, for one command.
#[derive(Debug)]
pub struct Hub {
    channel: Channel,
    address: String,
}

impl Hub {
    /// Connects as the paired client in `creds`, to `hub` if given (else
    /// the address stored at pairing).
    pub(crate) async fn connect(creds: &Credentials, hub: Option<&str>) -> Result<Hub, Error> {
        let (channel, address) = remote::connect(creds, hub).await?;
        Ok(Hub { channel, address })
    }

    // The clients share the one channel; making one is only a clone.
    pub(crate) fn alarm(&self) -> AlarmServiceClient<Channel> {
        AlarmServiceClient::new(self.channel.clone())
    }

    pub(crate) fn admin(&self) -> AdminServiceClient<Channel> {
        AdminServiceClient::new(self.channel.clone())
    }

    pub(crate) fn reports(&self) -> ReportServiceClient<Channel> {
        ReportServiceClient::new(self.channel.clone())
    }

    pub(crate) fn cameras(&self) -> CameraServiceClient<Channel> {
        CameraServiceClient::new(self.channel.clone())
    }

    /// The connection itself (for a call made outside these clients).
    pub(crate) fn channel(&self) -> Channel {
        self.channel.clone()
    }

    /// The hub's address, for messages.
    pub(crate) fn address(&self) -> &str {
        &self.address
    }

    /// The answer to one call, e.g.
    /// `hub.answer(hub.alarm().panic(request).await)`: a refusal becomes
    /// an [`Error`] here.
    pub(crate) fn answer<T>(
        &self,
        reply: Result<tonic::Response<T>, tonic::Status>,
    ) -> Result<T, Error> {
        reply
            .map(tonic::Response::into_inner)
            .map_err(|status| self.refused(&status))
    }

    /// The next message of a stream the hub sends; `None` at its end.
    pub(crate) async fn next<T>(
        &self,
        stream: &mut tonic::Streaming<T>,
    ) -> Result<Option<T>, Error> {
        stream
            .message()
            .await
            .map_err(|status| self.refused(&status))
    }

    fn refused(&self, status: &tonic::Status) -> Error {
        Error::from_status(status, &self.address)
    }
}
