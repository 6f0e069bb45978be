//! The gRPC ingest API as an EHR system uses it: positions, idempotency, atomic
//! batches, precise errors, the streaming append, health and reflection.

use kpr_wire::pb;
use tonic::Code;
use tonic_types::StatusExt;

use crate::support::*;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn append_returns_positions_and_is_idempotent() {
    let dir = tempfile::tempdir().unwrap();
    let server = InProcess::start(config(dir.path())).await;
    let mut client = server.client().await;
    let batch = episode("0301", 1, "S-1");
    let first = client
        .append(server.authed(pb::AppendRequest {
            events: batch.clone(),
        }))
        .await
        .unwrap()
        .into_inner();
    assert_eq!(first.acks.len(), 3);
    assert!(
        first
            .acks
            .iter()
            .all(|a| !a.duplicate && a.partition == first.acks[0].partition)
    );
    assert!(first.acks.windows(2).all(|w| w[0].offset < w[1].offset));
    assert_eq!(
        first
            .acks
            .iter()
            .map(|a| a.event_id.clone())
            .collect::<Vec<_>>(),
        batch.iter().map(|e| e.event_id.clone()).collect::<Vec<_>>()
    );

    // The same batch again: acknowledged with the original positions, stored once.
    let again = client
        .append(server.authed(pb::AppendRequest {
            events: batch.clone(),
        }))
        .await
        .unwrap()
        .into_inner();
    assert!(again.acks.iter().all(|a| a.duplicate));
    assert_eq!(
        again
            .acks
            .iter()
            .map(|a| (a.partition, a.offset))
            .collect::<Vec<_>>(),
        first
            .acks
            .iter()
            .map(|a| (a.partition, a.offset))
            .collect::<Vec<_>>()
    );

    // Same id, different content: refused with the field named.
    let mut changed = batch[0].clone();
    changed.source_version = "9.2".into();
    let status = client
        .append(server.authed(pb::AppendRequest {
            events: vec![changed],
        }))
        .await
        .unwrap_err();
    assert_eq!(status.code(), Code::InvalidArgument);
    let fields: Vec<String> = status
        .get_details_bad_request()
        .unwrap()
        .field_violations
        .into_iter()
        .map(|v| v.field)
        .collect();
    assert_eq!(fields, vec!["events[0].event_id".to_string()]);

    server.stop().await;
    // After a restart the state is rebuilt from the log: still a duplicate.
    let server = InProcess::start(config(dir.path())).await;
    let mut client = server.client().await;
    let after = client
        .append(server.authed(pb::AppendRequest { events: batch }))
        .await
        .unwrap()
        .into_inner();
    assert!(after.acks.iter().all(|a| a.duplicate));
    assert_eq!(after.acks[2].offset, first.acks[2].offset);
    server.stop().await;
    assert_eq!(
        read_log(dir.path()).await.len(),
        3,
        "the log holds each event once"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_refused_batch_stores_nothing_and_names_event_and_rule() {
    let dir = tempfile::tempdir().unwrap();
    let server = InProcess::start(config(dir.path())).await;
    let mut client = server.client().await;
    let id = synthetic_id(7);
    // Event 1 starts a service that has no decision.
    let batch = vec![
        event("4601", &id, "", health_check(3)),
        event("4601", &id, "S-9", started(2)),
    ];
    let status = client
        .append(server.authed(pb::AppendRequest {
            events: batch.clone(),
        }))
        .await
        .unwrap_err();
    assert_eq!(status.code(), Code::FailedPrecondition);
    let violations = status
        .get_details_precondition_failure()
        .unwrap()
        .violations;
    assert_eq!(violations.len(), 1);
    assert_eq!(violations[0].r#type, "START_NEEDS_GRANTED_DECISION");
    assert!(
        violations[0].subject.starts_with("events[1]"),
        "subject {}",
        violations[0].subject
    );
    // Nothing of the batch was stored: the valid event is new when sent alone.
    let alone = client
        .append(server.authed(pb::AppendRequest {
            events: vec![batch[0].clone()],
        }))
        .await
        .unwrap()
        .into_inner();
    assert!(!alone.acks[0].duplicate);

    // Lifecycle rules see earlier batches: a second start names the first one.
    let mut episode = episode("4601", 8, "S-10");
    client
        .append(server.authed(pb::AppendRequest {
            events: episode.clone(),
        }))
        .await
        .unwrap();
    let mut second_start = episode.remove(2);
    second_start.event_id = new_id();
    let status = client
        .append(server.authed(pb::AppendRequest {
            events: vec![second_start],
        }))
        .await
        .unwrap_err();
    let v = &status
        .get_details_precondition_failure()
        .unwrap()
        .violations[0];
    assert_eq!(v.r#type, "SERVICE_ALREADY_STARTED");
    assert!(
        v.subject.contains(&episode[0].event_id[..8]) || v.subject.contains("event "),
        "subject {}",
        v.subject
    );
    server.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn streaming_append_answers_each_batch_in_order() {
    let dir = tempfile::tempdir().unwrap();
    let server = InProcess::start(config(dir.path())).await;
    let mut client = server.client().await;
    let mut bad = episode("5001", 3, "S-3");
    bad[1].payload = Some(pb::Payload {
        kind: Some(decided("15", Some(500.0), 30)),
    });
    let requests = vec![
        pb::AppendRequest {
            events: episode("5001", 2, "S-2"),
        },
        pb::AppendRequest { events: bad },
        pb::AppendRequest {
            events: episode("5001", 4, "S-4"),
        },
    ];
    let mut answers = client
        .append_stream(bearer(&server.token("5001"), tokio_stream::iter(requests)))
        .await
        .unwrap()
        .into_inner();
    let mut seen = Vec::new();
    while let Some(answer) = answers.message().await.unwrap() {
        seen.push(answer);
    }
    assert_eq!(
        seen.iter().map(|a| a.batch_index).collect::<Vec<_>>(),
        vec![0, 1, 2]
    );
    match &seen[1].result {
        Some(pb::append_stream_response::Result::Rejected(r)) => {
            assert_eq!(r.code, Code::InvalidArgument as i32);
            assert_eq!(
                r.field_violations[0].field,
                "events[1].payload.service_decided.hours_per_week"
            );
            assert_eq!(r.field_violations[0].event_index, 1);
        }
        other => panic!("batch 1 should be rejected, got {other:?}"),
    }
    for i in [0, 2] {
        assert!(
            matches!(&seen[i].result, Some(pb::append_stream_response::Result::Appended(a)) if a.acks.len() == 3)
        );
    }
    server.stop().await;
    assert_eq!(read_log(dir.path()).await.len(), 6);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_oversized_stream_message_ends_the_stream_with_the_bound_named() {
    let dir = tempfile::tempdir().unwrap();
    let server = InProcess::start(config(dir.path())).await;
    let mut client = server.client().await;
    let mut huge = episode("5001", 12, "S-12");
    huge[0].source_version = "x".repeat(300 * 1024);
    let requests = vec![
        pb::AppendRequest {
            events: episode("5001", 11, "S-11"),
        },
        pb::AppendRequest { events: huge },
    ];
    let mut answers = client
        .append_stream(bearer(&server.token("5001"), tokio_stream::iter(requests)))
        .await
        .unwrap()
        .into_inner();
    let first = answers.message().await.unwrap().unwrap();
    assert!(matches!(
        first.result,
        Some(pb::append_stream_response::Result::Appended(_))
    ));
    let error = answers.message().await.unwrap_err();
    assert!(
        matches!(error.code(), Code::OutOfRange | Code::ResourceExhausted),
        "{error:?}"
    );
    assert!(
        error.message().contains(&(256 * 1024).to_string()),
        "{}",
        error.message()
    );
    server.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn health_and_reflection_are_served() {
    let dir = tempfile::tempdir().unwrap();
    let server = InProcess::start(config(dir.path())).await;
    let channel = tonic::transport::Endpoint::from_shared(server.endpoint.clone())
        .unwrap()
        .connect()
        .await
        .unwrap();
    let mut health = tonic_health::pb::health_client::HealthClient::new(channel.clone());
    let reply = health
        .check(tonic_health::pb::HealthCheckRequest {
            service: "kpr.v1.IngestService".into(),
        })
        .await
        .unwrap()
        .into_inner();
    assert_eq!(
        reply.status,
        tonic_health::pb::health_check_response::ServingStatus::Serving as i32
    );

    use tonic_reflection::pb::v1::ServerReflectionRequest;
    use tonic_reflection::pb::v1::server_reflection_client::ServerReflectionClient;
    use tonic_reflection::pb::v1::server_reflection_request::MessageRequest;
    use tonic_reflection::pb::v1::server_reflection_response::MessageResponse;
    let mut reflection = ServerReflectionClient::new(channel);
    let requests = vec![
        ServerReflectionRequest {
            host: String::new(),
            message_request: Some(MessageRequest::ListServices(String::new())),
        },
        ServerReflectionRequest {
            host: String::new(),
            message_request: Some(MessageRequest::FileContainingSymbol(
                "kpr.v1.IngestService".into(),
            )),
        },
    ];
    let mut answers = reflection
        .server_reflection_info(tokio_stream::iter(requests))
        .await
        .unwrap()
        .into_inner();
    let listed = answers.message().await.unwrap().unwrap();
    let Some(MessageResponse::ListServicesResponse(list)) = listed.message_response else {
        panic!("no service list")
    };
    let names: Vec<String> = list.service.into_iter().map(|s| s.name).collect();
    assert!(
        names.contains(&"kpr.v1.IngestService".to_string()),
        "{names:?}"
    );
    assert!(
        names.contains(&"grpc.health.v1.Health".to_string()),
        "{names:?}"
    );
    let file = answers.message().await.unwrap().unwrap();
    assert!(
        matches!(file.message_response, Some(MessageResponse::FileDescriptorResponse(f)) if !f.file_descriptor_proto.is_empty())
    );
    server.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn synthetic_ids_are_refused_unless_the_deployment_allows_them() {
    let dir = tempfile::tempdir().unwrap();
    let mut production = config(dir.path());
    production.allow_synthetic_ids = false;
    let server = InProcess::start(production).await;
    let mut client = server.client().await;
    let status = client
        .append(server.authed(pb::AppendRequest {
            events: vec![event("0301", &synthetic_id(5), "", health_check(1))],
        }))
        .await
        .unwrap_err();
    assert_eq!(status.code(), Code::InvalidArgument);
    let violation = &status.get_details_bad_request().unwrap().field_violations[0];
    assert_eq!(violation.field, "events[0].person.national_id");
    assert!(
        violation.description.contains("synthetic"),
        "{}",
        violation.description
    );
    server.stop().await;
}
