//! What an app developer with only the hub's CA can see: the standard gRPC
//! health and reflection services answer without a client certificate
//! (grpcurl uses them), while the API itself refuses.

use anyhow::{Context, Result, ensure};
use tokio_stream::StreamExt;
use tonic_health::pb::HealthCheckRequest;
use tonic_health::pb::health_client::HealthClient;
use tonic_reflection::pb::v1::ServerReflectionRequest;
use tonic_reflection::pb::v1::server_reflection_client::ServerReflectionClient;
use tonic_reflection::pb::v1::server_reflection_request::MessageRequest;
use tonic_reflection::pb::v1::server_reflection_response::MessageResponse;
use vigil_e2e::{RunAs, Stack, TEST_ALARM, TEST_SENSORS, message};

#[test]
fn health_and_reflection_answer_an_unpaired_client() -> Result<()> {
    let stack = Stack::new(&format!("{TEST_SENSORS}{TEST_ALARM}"), RunAs::Me)?;
    let hub = stack.start("vigil-hub")?;
    hub.wait_log(0, "the hub", |l| message(l) == "hub ready")?;
    // Pairing stores the CA; the test then connects without a certificate.
    stack.pair_here("guest")?;
    let creds = stack.root.path().join("credentials");
    let ca = std::fs::read_to_string(creds.join("ca.pem"))?;
    let addr = std::fs::read_to_string(creds.join("hub"))?
        .trim()
        .to_owned();

    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?;
    runtime.block_on(async {
        let channel = vigilctl::remote::connect_anonymous(&ca, &addr).await?;

        let mut health = HealthClient::new(channel.clone());
        for service in ["", "vigil.v1.AlarmService", "vigil.v1.AdminService"] {
            let answer = health
                .check(HealthCheckRequest {
                    service: service.into(),
                })
                .await
                .with_context(|| format!("health of {service:?}"))?
                .into_inner();
            // 1 = SERVING
            ensure!(answer.status == 1, "{service:?}: {answer:?}");
        }

        let mut reflection = ServerReflectionClient::new(channel);
        let request = ServerReflectionRequest {
            host: String::new(),
            message_request: Some(MessageRequest::ListServices(String::new())),
        };
        let mut answers = reflection
            .server_reflection_info(tokio_stream::iter([request]))
            .await?
            .into_inner();
        let answer = answers.next().await.context("no reflection answer")??;
        let Some(MessageResponse::ListServicesResponse(list)) = answer.message_response else {
            anyhow::bail!("unexpected reflection answer: {answer:?}");
        };
        let names: Vec<String> = list.service.into_iter().map(|s| s.name).collect();
        for want in [
            "vigil.v1.AlarmService",
            "vigil.v1.AdminService",
            "grpc.health.v1.Health",
        ] {
            ensure!(
                names.iter().any(|n| n == want),
                "{want} not listed: {names:?}"
            );
        }
        anyhow::Ok(())
    })
}
