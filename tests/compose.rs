//! docker-compose.yml cannot be run here (no Docker engine), so its structure is checked:
//! services, images, localhost-only ports, healthchecks, start order, and that every
//! tickflow command in it is accepted by the real command line.

mod common;

use yaml_rust2::{Yaml, YamlLoader};

fn compose() -> Yaml {
    let text = std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/docker-compose.yml"))
        .expect("docker-compose.yml exists");
    YamlLoader::load_from_str(&text)
        .expect("valid YAML")
        .into_iter()
        .next()
        .expect("one document")
}

fn strings(node: &Yaml) -> Vec<String> {
    node.as_vec()
        .map(|v| {
            v.iter()
                .filter_map(|s| s.as_str().map(str::to_owned))
                .collect()
        })
        .unwrap_or_default()
}

#[test]
fn services_images_ports_and_healthchecks() {
    let doc = compose();
    let services = &doc["services"];
    for name in ["kafka", "postgres", "produce", "tickflow"] {
        assert!(!services[name].is_badvalue(), "service {name} missing");
    }
    let kafka = &services["kafka"];
    assert!(kafka["image"]
        .as_str()
        .is_some_and(|i| i.starts_with("apache/kafka:")));
    assert!(
        kafka["environment"]["KAFKA_PROCESS_ROLES"]
            .as_str()
            .is_some_and(|r| r.contains("controller")),
        "Kafka must run in KRaft mode"
    );
    assert!(services["postgres"]["image"]
        .as_str()
        .is_some_and(|i| i.starts_with("postgres:")));
    for (name, port) in [("kafka", "9092"), ("postgres", "5432")] {
        let ports = strings(&services[name]["ports"]);
        assert_eq!(
            ports,
            vec![format!("127.0.0.1:{port}:{port}")],
            "{name} on localhost only"
        );
        assert!(
            !services[name]["healthcheck"]["test"].is_badvalue(),
            "{name} healthcheck"
        );
    }
    for name in ["produce", "tickflow"] {
        assert_eq!(
            services[name]["build"].as_str(),
            Some("."),
            "{name} builds the Dockerfile"
        );
        assert_eq!(
            services[name]["depends_on"]["kafka"]["condition"].as_str(),
            Some("service_healthy"),
            "{name} waits for a healthy Kafka"
        );
    }
    assert_eq!(
        services["tickflow"]["depends_on"]["postgres"]["condition"].as_str(),
        Some("service_healthy")
    );
    let dockerfile = std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/Dockerfile"))
        .expect("Dockerfile exists");
    assert!(
        dockerfile.contains("--bin tickflow") && dockerfile.contains("ENTRYPOINT [\"tickflow\"]")
    );
}

#[test]
fn every_tickflow_command_in_the_stack_is_valid() {
    let doc = compose();
    let dir = tempfile::tempdir().expect("tempdir");
    for name in ["produce", "tickflow"] {
        let mut args = strings(&doc["services"][name]["command"]);
        assert!(!args.is_empty(), "{name} has a command");
        // clap reads every option before `--help`: an unknown one would be an error.
        args.push("--help".into());
        let args: Vec<&str> = args.iter().map(String::as_str).collect();
        let out = std::process::Command::new(common::BIN)
            .args(&args)
            .current_dir(dir.path())
            .output()
            .expect("runs");
        assert!(
            out.status.success(),
            "{name}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
    }
}
