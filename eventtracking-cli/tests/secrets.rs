//! One secret policy on every error path: a corpus of secret-bearing
//! configs, each secret a distinctive string, goes through config parsing
//! (parse errors, unknown keys, invalid values), the backend builds of
//! `kafka`, `mongo` and `file`, the relay's `[source]`, `Debug` output, and
//! the stderr (and dead-letter file) of `eventtracking send`, `demo` and
//! `relay`. No secret may appear anywhere.

use std::io::{Read, Write};
use std::path::Path;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use eventtracking::Config;

/// Nothing listens here: connections are refused at once.
const NOWHERE: &str = "127.0.0.1:1";

/// `(what it exercises, TOML)`; every string `S3CRET-…` in them is a secret.
/// Files go to `dir`.
fn corpus(dir: &Path) -> Vec<(&'static str, String)> {
    let sink = format!(
        "[backends.sink]\nengine = \"file\"\npath = \"{}\"\n",
        dir.join("events.jsonl").display()
    );
    vec![
        (
            "misspelt secret Kafka property (librdkafka quotes the value)",
            format!(
                "[backends.stream]\nengine = \"kafka\"\nbrokers = \"{NOWHERE}\"\ntopic = \"t\"\n\
                 [backends.stream.properties]\n\"sasl.passwd\" = \"S3CRET-kafka-passwd-a1\"\n"
            ),
        ),
        (
            "secret Kafka value quoted by librdkafka for another property",
            format!(
                "[backends.stream]\nengine = \"kafka\"\nbrokers = \"{NOWHERE}\"\ntopic = \"t\"\n\
                 [backends.stream.properties]\n\"sasl.password\" = \"S3CRET-kafka-pw-b2\"\nacks = \"S3CRET-kafka-pw-b2\"\n"
            ),
        ),
        (
            "Kafka key material",
            format!(
                "[backends.stream]\nengine = \"kafka\"\nbrokers = \"{NOWHERE}\"\ntopic = \"t\"\n\
                 [backends.stream.properties]\n\"ssl.key.pem\" = \"S3CRET-kafka-pem-c3\"\n\"sasl.oauthbearer.config\" = \"S3CRET-kafka-oauth-c4\"\n"
            ),
        ),
        (
            "Kafka secret given as a table (invalid value)",
            format!(
                "[backends.stream]\nengine = \"kafka\"\nbrokers = \"{NOWHERE}\"\ntopic = \"t\"\n\
                 [backends.stream.properties.\"sasl.password\"]\nx = \"S3CRET-kafka-table-d5\"\n"
            ),
        ),
        (
            "Kafka producer that starts (secrets set, broker down)",
            format!(
                "[delivery]\nmax_retries = 0\n[backends.stream]\nengine = \"kafka\"\nbrokers = \"{NOWHERE}\"\ntopic = \"t\"\n\
                 [backends.stream.properties]\n\"sasl.username\" = \"u\"\n\"sasl.password\" = \"S3CRET-kafka-run-e6\"\n\
                 \"security.protocol\" = \"SASL_PLAINTEXT\"\n\"sasl.mechanisms\" = \"PLAIN\"\n\"message.timeout.ms\" = \"500\"\n"
            ),
        ),
        (
            "MongoDB URI with credential parameters the driver refuses",
            "[backends.db]\nengine = \"mongo\"\nuri = \"mongodb://app:S3CRET-mongo-pw-f7@127.0.0.1:1/?tlsCertificateKeyFilePassword=S3CRET-mongo-tls-f8&tls=maybe\"\n".to_owned(),
        ),
        (
            "MongoDB URI with AWS session token",
            "[backends.db]\nengine = \"mongo\"\nuri = \"mongodb://AKIAEXAMPLE:S3CRET-mongo-aws-g9@127.0.0.1:1/?authMechanism=MONGODB-AWS&authMechanismProperties=AWS_SESSION_TOKEN:S3CRET-mongo-token-g10&w=bogus&wtimeoutMS=-5\"\n".to_owned(),
        ),
        (
            "MongoDB URI that parses (server down)",
            "[delivery]\nmax_retries = 0\n[backends.db]\nengine = \"mongo\"\nserver_selection_timeout_ms = 300\nuri = \"mongodb://app:S3CRET-mongo-run-h11@127.0.0.1:1/?authMechanismProperties=AWS_SESSION_TOKEN:S3CRET-mongo-run-h12\"\n".to_owned(),
        ),
        (
            "TOML error on a password line",
            format!("{sink}[backends.x]\nengine = \"file\"\npassword = \"S3CRET-toml-i13\n"),
        ),
        (
            "TOML unterminated multi-line string",
            format!("{sink}[backends.x]\nengine = \"file\"\ntoken = \"\"\"S3CRET-toml-i14\nS3CRET-toml-i15\n"),
        ),
        (
            "TOML error inside a misspelt secret property",
            format!(
                "[backends.stream]\nengine = \"kafka\"\nbrokers = \"{NOWHERE}\"\ntopic = \"t\"\n\
                 [backends.stream.properties]\n\"sasl.passwd\" = \"S3CRET-toml-j16\\q\"\n"
            ),
        ),
        (
            "unknown secret-looking key of the file backend",
            format!("{sink}[backends.x]\nengine = \"file\"\npath = \"x.jsonl\"\ntoken = \"S3CRET-file-k17\"\n"),
        ),
        (
            "relay source with a misspelt secret property",
            format!(
                "{sink}[source]\nengine = \"kafka\"\nbrokers = \"{NOWHERE}\"\ntopics = [\"t\"]\ngroup = \"g\"\n\
                 [source.properties]\n\"sasl.passwd\" = \"S3CRET-relay-l18\"\n"
            ),
        ),
        (
            "relay source with a secret value quoted for another property",
            format!(
                "{sink}[source]\nengine = \"kafka\"\nbrokers = \"{NOWHERE}\"\ntopics = [\"t\"]\ngroup = \"g\"\n\
                 [source.properties]\n\"sasl.password\" = \"S3CRET-relay-m19\"\n\"session.timeout.ms\" = \"S3CRET-relay-m19\"\n"
            ),
        ),
        (
            "relay source with an unknown secret-looking key",
            format!(
                "{sink}[source]\nengine = \"kafka\"\nbrokers = \"{NOWHERE}\"\ntopics = [\"t\"]\ngroup = \"g\"\n\
                 password = \"S3CRET-relay-n20\"\n"
            ),
        ),
    ]
}

fn assert_clean(what: &str, path: &str, text: &str) {
    // Every distinctive secret starts so; none may show, whole or in part.
    if let Some(at) = text.find("S3CRET") {
        let end = (at + 24).min(text.len());
        panic!(
            "{what}: a secret leaked through {path}: …{}…\n--- whole output ---\n{text}",
            &text[at..end]
        );
    }
    for fragment in [
        "kafka-passwd",
        "mongo-tls",
        "mongo-token",
        "toml-i15",
        "toml-j16",
    ] {
        assert!(
            !text.contains(fragment),
            "{what}: `{fragment}` leaked through {path}:\n{text}"
        );
    }
}

/// Runs the binary in `dir` (killing it after a generous bound), returning stderr.
fn run(dir: &Path, args: &[&str], stdin: &str) -> String {
    let mut child = Command::new(env!("CARGO_BIN_EXE_eventtracking"))
        .args(args)
        .current_dir(dir)
        .env_remove("EVENTTRACKING_CONFIG")
        .env("RUST_LOG", "debug")
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let mut input = child.stdin.take().unwrap();
    let _ = input.write_all(stdin.as_bytes());
    drop(input);
    let mut stderr = child.stderr.take().unwrap();
    let reader = std::thread::spawn(move || {
        let mut text = String::new();
        let _ = stderr.read_to_string(&mut text);
        text
    });
    let mut stdout = child.stdout.take().unwrap();
    let out_reader = std::thread::spawn(move || {
        let mut text = String::new();
        let _ = stdout.read_to_string(&mut text);
        text
    });
    let deadline = Instant::now() + Duration::from_secs(20);
    while child.try_wait().unwrap().is_none() {
        if Instant::now() > deadline {
            // A relay that started keeps running: end it as a user would.
            let _ = Command::new("kill")
                .args(["-TERM", &child.id().to_string()])
                .status();
            std::thread::sleep(Duration::from_secs(5));
            let _ = child.kill();
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    let _ = child.wait();
    reader.join().unwrap() + &out_reader.join().unwrap()
}

#[test]
fn no_secret_reaches_any_error_log_or_debug_output() {
    let dir = tempfile::tempdir().unwrap();
    for (what, toml) in corpus(dir.path()) {
        // The library: parse, Debug, build, the [source] entry.
        match Config::from_toml_str(&toml) {
            Err(error) => {
                assert_clean(what, "the parse error", &format!("{error} {error:?}"));
            }
            Ok(config) => {
                assert_clean(what, "Config's Debug", &format!("{config:?} {config:#?}"));
                if let Ok(Some(source)) = config.source() {
                    assert_clean(what, "the source's Debug", &format!("{source:?}"));
                }
                let built = config.build();
                assert_clean(what, "the build result", &format!("{built:?}"));
                if let Err(error) = built {
                    assert_clean(what, "the build error", &error.to_string());
                }
            }
        }

        // The binary: every command that reads a config.
        let config = dir.path().join("config.toml");
        std::fs::write(&config, &toml).unwrap();
        let config = config.to_str().unwrap();
        for args in [
            &["send", "--timeout", "3", "--config", config][..],
            &["demo", "--timeout", "3", "--config", config][..],
            &["relay", "--config", config][..],
        ] {
            let stderr = run(dir.path(), args, "{\"name\":\"s.t\",\"data\":{}}\n");
            assert_clean(what, &format!("`eventtracking {}`", args[0]), &stderr);
        }
        // Whatever the runs left behind (dead letters, events).
        for entry in std::fs::read_dir(dir.path()).unwrap() {
            let path = entry.unwrap().path();
            if path.is_file() && !path.ends_with("config.toml") {
                let text = String::from_utf8_lossy(&std::fs::read(&path).unwrap()).into_owned();
                assert_clean(what, &path.display().to_string(), &text);
            }
        }
    }
}
