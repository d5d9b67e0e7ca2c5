//! The bridge's connection to the hub: a paired gRPC client (its
//! credentials directory, `[mqtt] hub_credentials`), with the few calls
//! the bridge makes. The bridge is an API client like a phone: the hub
//! checks its role and every code, and attributes what it does to it.

use tonic::transport::Channel;
use tonic::{Request, Status, Streaming};
use vigil_domain::ArmedMode;
use vigil_proto::v1 as pb;
use vigil_proto::v1::alarm_service_client::AlarmServiceClient;
use vigil_proto::v1::camera_service_client::CameraServiceClient;

/// The hub, connected.
#[derive(Clone, Debug)]
pub(crate) struct Hub {
    alarm: AlarmServiceClient<Channel>,
    cameras: CameraServiceClient<Channel>,
}

/// A live event stream and the last event before it started.
pub(crate) struct Watch {
    pub(crate) events: Streaming<pb::Event>,
    /// `vigil-last-seq`: the last event numbered when the stream began.
    pub(crate) last_seq: Option<u64>,
    pub(crate) log_id: Option<String>,
}

impl Hub {
    /// Connects with the credentials in `dir` to `address` (else the one
    /// stored at pairing). The error says why, for the operator's log.
    pub(crate) async fn connect(
        dir: &std::path::Path,
        address: Option<&str>,
    ) -> Result<Hub, vigilctl::Error> {
        let creds = vigilctl::remote::Credentials::locate(Some(dir.to_owned()));
        let (channel, _) = vigilctl::remote::connect(&creds, address).await?;
        Ok(Hub {
            alarm: AlarmServiceClient::new(channel.clone()),
            cameras: CameraServiceClient::new(channel),
        })
    }

    pub(crate) async fn system(&mut self) -> Result<pb::GetSystemResponse, Status> {
        Ok(self
            .alarm
            .get_system(pb::GetSystemRequest {})
            .await?
            .into_inner())
    }

    pub(crate) async fn status(&mut self) -> Result<pb::Status, Status> {
        let response = self.alarm.get_status(pb::GetStatusRequest {}).await?;
        Ok(response.into_inner().status.unwrap_or_default())
    }

    pub(crate) async fn sensors(&mut self) -> Result<Vec<pb::Sensor>, Status> {
        let response = self.alarm.list_sensors(pb::ListSensorsRequest {}).await?;
        Ok(response.into_inner().sensors)
    }

    /// Events after `after_seq` (or from now), with the stream's headers.
    pub(crate) async fn watch(&mut self, after_seq: Option<u64>) -> Result<Watch, Status> {
        let response = self
            .alarm
            .watch_events(pb::WatchEventsRequest { after_seq })
            .await?;
        let header = |name: &str| {
            response
                .metadata()
                .get(name)
                .and_then(|v| v.to_str().ok())
                .map(str::to_owned)
        };
        let last_seq = header("vigil-last-seq").and_then(|s| s.parse().ok());
        let log_id = header("vigil-log-id");
        Ok(Watch {
            events: response.into_inner(),
            last_seq,
            log_id,
        })
    }

    pub(crate) async fn arm(
        &mut self,
        mode: ArmedMode,
        pin: Option<String>,
    ) -> Result<pb::Status, Status> {
        let request = pb::ArmRequest {
            mode: mode_to_proto(mode) as i32,
            force: false,
            pin: pin.unwrap_or_default(),
        };
        let response = self.alarm.arm(Request::new(request)).await?;
        Ok(response.into_inner().status.unwrap_or_default())
    }

    pub(crate) async fn disarm(&mut self, pin: Option<String>) -> Result<pb::Status, Status> {
        let request = pb::DisarmRequest {
            pin: pin.unwrap_or_default(),
        };
        let response = self.alarm.disarm(Request::new(request)).await?;
        Ok(response.into_inner().status.unwrap_or_default())
    }

    pub(crate) async fn panic(&mut self) -> Result<pb::Status, Status> {
        let response = self.alarm.panic(pb::PanicRequest {}).await?;
        Ok(response.into_inner().status.unwrap_or_default())
    }

    pub(crate) async fn snapshot(&mut self, camera: &str) -> Result<Vec<u8>, Status> {
        let response = self
            .cameras
            .snapshot(pb::SnapshotRequest {
                camera: camera.to_owned(),
            })
            .await?;
        Ok(response.into_inner().jpeg)
    }
}

pub(crate) fn mode_to_proto(mode: ArmedMode) -> pb::Mode {
    match mode {
        ArmedMode::Disarmed => pb::Mode::Disarmed,
        ArmedMode::Home => pb::Mode::Home,
        ArmedMode::Away => pb::Mode::Away,
        ArmedMode::Night => pb::Mode::Night,
        ArmedMode::Vacation => pb::Mode::Vacation,
        ArmedMode::Custom => pb::Mode::Custom,
    }
}

pub(crate) fn mode_from_proto(mode: i32) -> ArmedMode {
    match pb::Mode::try_from(mode).unwrap_or(pb::Mode::Unspecified) {
        pb::Mode::Home => ArmedMode::Home,
        pb::Mode::Away => ArmedMode::Away,
        pb::Mode::Night => ArmedMode::Night,
        pb::Mode::Vacation => ArmedMode::Vacation,
        pb::Mode::Custom => ArmedMode::Custom,
        pb::Mode::Disarmed | pb::Mode::Unspecified => ArmedMode::Disarmed,
    }
}

/// An event's sensor state (none for events about no sensor).
pub(crate) fn sensor_state_from_proto(state: i32) -> Option<vigil_domain::SensorState> {
    use vigil_domain::SensorState;
    match pb::SensorState::try_from(state).ok()? {
        pb::SensorState::Active => Some(SensorState::Active),
        pb::SensorState::Inactive => Some(SensorState::Inactive),
        pb::SensorState::Unknown => Some(SensorState::Unknown),
        pb::SensorState::Unspecified => None,
    }
}

pub(crate) fn state_from_proto(state: i32) -> vigil_domain::AlarmState {
    use vigil_domain::AlarmState;
    match pb::AlarmState::try_from(state).unwrap_or(pb::AlarmState::Unspecified) {
        pb::AlarmState::Arming => AlarmState::Arming,
        pb::AlarmState::Pending => AlarmState::Pending,
        pb::AlarmState::Triggered => AlarmState::Triggered,
        pb::AlarmState::Idle | pb::AlarmState::Unspecified => AlarmState::Idle,
    }
}
