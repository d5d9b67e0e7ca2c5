//! What an app developer with only the hub's CA can see: the standard gRPC
//! health and reflection services answer without a client certificate
//! (grpcurl uses them), reflection in both its versions (v1, and the
//! v1alpha that grpcio's and older grpcurl's clients speak), while the API
//! itself refuses.

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

        let mut reflection = ServerReflectionClient::new(channel.clone());
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
        expect_services("v1", &names)?;

        // The same through v1alpha, and a file that defines a service,
        // found by its symbol, as grpcurl's `describe` asks.
        use tonic_reflection::pb::v1alpha as alpha;
        let mut old = alpha::server_reflection_client::ServerReflectionClient::new(channel);
        let requests = [
            alpha::server_reflection_request::MessageRequest::ListServices(String::new()),
            alpha::server_reflection_request::MessageRequest::FileContainingSymbol(
                "vigil.v1.AdminService".into(),
            ),
        ]
        .map(|message_request| alpha::ServerReflectionRequest {
            host: String::new(),
            message_request: Some(message_request),
        });
        let mut answers = old
            .server_reflection_info(tokio_stream::iter(requests))
            .await?
            .into_inner();
        let answer = answers.next().await.context("no v1alpha answer")??;
        let Some(alpha::server_reflection_response::MessageResponse::ListServicesResponse(list)) =
            answer.message_response
        else {
            anyhow::bail!("unexpected v1alpha answer: {answer:?}");
        };
        let names: Vec<String> = list.service.into_iter().map(|s| s.name).collect();
        expect_services("v1alpha", &names)?;
        let answer = answers.next().await.context("no v1alpha file")??;
        let Some(alpha::server_reflection_response::MessageResponse::FileDescriptorResponse(
            files,
        )) = answer.message_response
        else {
            anyhow::bail!("unexpected v1alpha answer: {answer:?}");
        };
        let file = prost_types_name(&files.file_descriptor_proto)?;
        ensure!(file.contains("vigil/v1/admin.proto"), "{file}");
        anyhow::Ok(())
    })
}

fn expect_services(version: &str, names: &[String]) -> Result<()> {
    for want in [
        "vigil.v1.AlarmService",
        "vigil.v1.AdminService",
        "vigil.v1.CameraService",
        "vigil.v1.ReportService",
        "grpc.health.v1.Health",
    ] {
        ensure!(
            names.iter().any(|n| n == want),
            "{version}: {want} not listed: {names:?}"
        );
    }
    Ok(())
}

/// The names of serialized FileDescriptorProtos (field 1 of each), read
/// without a descriptor library.
fn prost_types_name(files: &[Vec<u8>]) -> Result<String> {
    let mut names = Vec::new();
    for file in files {
        // Field 1, wire type 2: tag 0x0a, a varint length, the name.
        ensure!(file.first() == Some(&0x0a), "not a FileDescriptorProto");
        let len = usize::from(*file.get(1).context("short")?);
        let name = file.get(2..2 + len).context("short")?;
        names.push(String::from_utf8_lossy(name).into_owned());
    }
    Ok(names.join(","))
}
