//! The NATS permissions the README gives each role (`docs/nats-roles.conf`), on a server
//! configured with exactly that file: a coordinator and an agent logged in as their roles run a
//! pipeline (workspace by content, shared stage cache) green; a plain client holding the agent's
//! credentials cannot queue a job, send a stop, write the run board or the shared cache, nor
//! remove a stream or a message — proven by the streams' message counts and a listener that
//! hears no stop.

use std::time::Duration;

use anyhow::{Context, Result};

use crate::support::agents::{Agent, coordinator, finish, read_report};
use crate::support::{NatsServer, Pipeline, Sandbox, Stage, repo_root, table};

const COORDINATOR_PASSWORD: &str = "coordinator-pw-4b1d";
const AGENT_PASSWORD: &str = "agent-pw-93ce";

fn server() -> Result<NatsServer> {
    let roles = repo_root().join("docs/nats-roles.conf");
    NatsServer::start_with_config(
        "include ./nats-roles.conf\n",
        &[&roles],
        &[
            ("SLUICE_COORDINATOR_NATS_PASSWORD", COORDINATOR_PASSWORD),
            ("SLUICE_AGENT_NATS_PASSWORD", AGENT_PASSWORD),
        ],
    )
}

fn pipeline() -> Pipeline {
    Pipeline::new("roles")
        .set("workspace", "ws")
        .stage(Stage::new("code", "checkout").allow("workspace", "read"))
        .stage(
            Stage::new("release", "emit")
                .phase("release")
                .inputs::<0>([])
                .set("needs", vec!["code"])
                .config("files", table([("r.txt", "released")])),
        )
}

/// Messages in each of sluice's streams, read as the coordinator.
async fn counts(js: &async_nats::jetstream::Context) -> Result<Vec<(String, u64)>> {
    let mut all = Vec::new();
    for name in [
        "SLUICE_JOBS",
        "SLUICE_RESULTS",
        "SLUICE_RUNS",
        "SLUICE_STAGE_CACHE",
        "OBJ_sluice-blobs",
    ] {
        let mut stream = js
            .get_stream(name)
            .await
            .with_context(|| format!("stream {name}"))?;
        all.push((name.to_string(), stream.info().await?.state.messages));
    }
    Ok(all)
}

#[test]
fn each_role_can_do_its_part_and_an_agent_credential_no_more() -> Result<()> {
    let server = server()?;
    let url = server.url();
    let sandbox = Sandbox::new()?;
    std::fs::create_dir_all(sandbox.path().join("ws"))?;
    std::fs::write(
        sandbox.path().join("ws/main.c"),
        "int main(void) { return 0; }\n",
    )?;
    let _agent = Agent::start(
        &sandbox,
        &url,
        "a",
        &["--nats-user", "agent", "--nats-password", AGENT_PASSWORD],
        &[],
    )?;
    let file = sandbox.pipeline("pipeline.toml", &pipeline().to_toml())?;
    let report = sandbox.path().join("report.json");
    let extra = [
        "--nats-user",
        "coordinator",
        "--nats-password",
        COORDINATOR_PASSWORD,
        "--shared-cache",
        url.as_str(),
    ];
    let (code, output) = finish(coordinator(&sandbox, &file, &url, &report, &extra)?, 120)?;
    assert_eq!(code, 0, "{output}");
    let record = read_report(&report)?;
    assert!(
        record
            .stages
            .iter()
            .all(|s| s.ran_on.as_deref().is_some_and(|r| r.starts_with("a ("))),
        "both stages ran on the agent: {output}"
    );

    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?;
    rt.block_on(async {
        let as_coordinator = async_nats::ConnectOptions::with_user_and_password(
            "coordinator".into(),
            COORDINATOR_PASSWORD.into(),
        )
        .connect(url.as_str())
        .await?;
        let watcher = async_nats::jetstream::new(as_coordinator);
        let before = counts(&watcher).await?;

        // An agent's credentials in a plain client.
        let connect_as_agent = || {
            async_nats::ConnectOptions::with_user_and_password(
                "agent".into(),
                AGENT_PASSWORD.into(),
            )
            .connect(url.as_str())
        };
        let thief = connect_as_agent().await?;
        let listener = connect_as_agent().await?;
        let mut stops = listener.subscribe("sluice.cancel.>").await?;
        listener.flush().await?;
        let js = async_nats::jetstream::ContextBuilder::new()
            .timeout(Duration::from_secs(1))
            .build(thief.clone());
        for subject in [
            "sluice.jobs.any",
            "sluice.runs.forged",
            "sluice.cache.forged",
        ] {
            let sent = match js.publish(subject, "forged".into()).await {
                Ok(ack) => ack.await.is_ok(),
                Err(_) => false,
            };
            assert!(!sent, "the server took a message on {subject} from an agent");
        }
        thief
            .publish("sluice.cancel.forged", "stop everything".into())
            .await?;
        thief.flush().await?;
        let heard = tokio::time::timeout(Duration::from_millis(500), stops.next_message()).await;
        assert!(heard.is_err(), "a stop from an agent's credentials was delivered");
        for (api, name) in [
            ("$JS.API.STREAM.DELETE.SLUICE_RESULTS", "delete"),
            ("$JS.API.STREAM.PURGE.SLUICE_RESULTS", "purge"),
            ("$JS.API.STREAM.MSG.DELETE.SLUICE_RESULTS", "message delete"),
        ] {
            let answer = tokio::time::timeout(
                Duration::from_secs(1),
                thief.request(api, r#"{"seq":1}"#.into()),
            )
            .await;
            let accepted = matches!(&answer, Ok(Ok(reply)) if !String::from_utf8_lossy(&reply.payload).contains("error"));
            assert!(!accepted, "{name} of SLUICE_RESULTS answered {answer:?}");
        }
        let after = counts(&watcher).await?;
        assert_eq!(before, after, "an agent's credentials changed a stream");
        anyhow::Ok(())
    })
}

/// The listener's next message (a helper name for the timeout above).
trait NextMessage {
    async fn next_message(&mut self) -> Option<async_nats::Message>;
}

impl NextMessage for async_nats::Subscriber {
    async fn next_message(&mut self) -> Option<async_nats::Message> {
        use futures_util::StreamExt;
        self.next().await
    }
}
