//! Configuration parsing: defaults, and one line naming the variable for each bad value.

use super::parse::default_instance_id;
use super::*;

fn config(pairs: &[(&str, &str)]) -> Result<Config, ConfigError> {
    let map = pairs
        .iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect();
    Config::from_map(&map)
}

#[test]
fn defaults_select_embedded_sqlite_on_port_8080() {
    let config = config(&[]).unwrap();
    assert_eq!(config.listen.to_string(), "0.0.0.0:8080");
    assert_eq!(config.admin_listen.to_string(), "127.0.0.1:9090");
    assert_eq!(
        config.database_url,
        DatabaseUrl::Sqlite(DEFAULT_DATABASE_URL.into())
    );
    assert_eq!(config.data_dir(), Some(PathBuf::from("data")));
    assert!(matches!(config.jwt_secret, JwtSecret::KeptInDataDir));
}

#[test]
fn postgres_without_jwt_secret_names_the_variable() {
    let err = config(&[("DATABASE_URL", "postgres://localhost/db")]).unwrap_err();
    assert_eq!(err.variable, "JWT_SECRET");
}

#[test]
fn short_jwt_secret_is_rejected() {
    let err = config(&[("JWT_SECRET", "short")]).unwrap_err();
    assert_eq!(
        err.to_string(),
        "JWT_SECRET: must be at least 32 bytes, got 5"
    );
}

#[test]
fn bad_values_name_their_variable() {
    for (name, value) in [
        ("TASKLIGHT_LISTEN", "nowhere"),
        ("DATABASE_URL", "mysql://x"),
        ("REDIS_URL", "http://x"),
        ("INSTANCE_ID", "has space"),
        ("LOG_FORMAT", "xml"),
        ("TASKLIGHT_DB_MAX_CONNECTIONS", "0"),
        ("TASKLIGHT_DB_ACQUIRE_TIMEOUT_MS", "soon"),
        ("OTEL_EXPORTER_OTLP_ENDPOINT", "localhost"),
        ("OTEL_RESOURCE_ATTRIBUTES", "novalue"),
        ("SENTRY_DSN", "not a dsn"),
        ("SENTRY_SEND_DEFAULT_PII", "maybe"),
        ("TASKLIGHT_RATE_LIMIT_USER", "lots"),
        ("TASKLIGHT_RATE_LIMIT_AUTH_ACCOUNT", "10/60s,burst=0"),
        ("TASKLIGHT_RATE_LIMIT_LOCAL_SHARE", "1.5"),
        ("TASKLIGHT_TRUSTED_PROXIES", "10.0.0.0/8, proxy.local"),
        ("TASKLIGHT_DRAIN_DELAY_MS", "-1"),
        ("TASKLIGHT_SHUTDOWN_TIMEOUT_MS", "0"),
        ("TASKLIGHT_REQUEST_TIMEOUT_MS", "forever"),
        ("TASKLIGHT_MAX_HEADER_BYTES", "512"),
        ("TASKLIGHT_MAX_HEADER_BYTES", "1048576"),
        ("TASKLIGHT_MAX_URI_BYTES", "16kb"),
        ("TASKLIGHT_CORS_ALLOWED_ORIGINS", "*"),
        (
            "TASKLIGHT_CORS_ALLOWED_ORIGINS",
            "https://app.example.com/path",
        ),
    ] {
        let err = config(&[(name, value)]).unwrap_err();
        assert_eq!(err.variable, name, "{value}");
    }
}

#[test]
fn samplers_follow_the_opentelemetry_names() {
    let with = |sampler: &str, arg: &str| {
        config(&[
            ("OTEL_EXPORTER_OTLP_ENDPOINT", "http://localhost:4317"),
            ("OTEL_TRACES_SAMPLER", sampler),
            ("OTEL_TRACES_SAMPLER_ARG", arg),
        ])
    };
    let sampling = |c: Config| c.traces.unwrap().sampling;
    assert_eq!(
        sampling(with("parentbased_traceidratio", "0.25").unwrap()),
        Sampling::ParentBasedRatio(0.25)
    );
    assert_eq!(
        sampling(with("always_off", "").unwrap()),
        Sampling::AlwaysOff
    );
    assert_eq!(
        with("traceidratio", "2").unwrap_err().variable,
        "OTEL_TRACES_SAMPLER_ARG"
    );
    assert_eq!(
        with("sometimes", "").unwrap_err().variable,
        "OTEL_TRACES_SAMPLER"
    );
}

#[test]
fn environment_comes_from_resource_attributes_first() {
    let c = config(&[
        (
            "OTEL_RESOURCE_ATTRIBUTES",
            "team=core,deployment.environment.name=staging",
        ),
        ("SENTRY_ENVIRONMENT", "prod"),
        ("OTEL_EXPORTER_OTLP_ENDPOINT", "http://localhost:4317"),
    ])
    .unwrap();
    assert_eq!(c.traces.unwrap().environment, "staging");
}

#[test]
fn generated_instance_ids_differ() {
    assert_ne!(default_instance_id(), default_instance_id());
}

#[test]
fn trusted_proxies_and_quotas_are_read() {
    let config = config(&[
        ("TASKLIGHT_TRUSTED_PROXIES", "10.0.0.0/8, 127.0.0.1"),
        ("TASKLIGHT_RATE_LIMIT_AUTH_IP", "5/1m,burst=2"),
        ("TASKLIGHT_DRAIN_DELAY_MS", "0"),
    ])
    .unwrap();
    assert_eq!(config.trusted_proxies.len(), 2);
    assert!(config.trusted_proxies[1].contains("127.0.0.1".parse().unwrap()));
    assert_eq!(config.rate_limits.auth_ip, Quota::new(5, 60, 2));
    assert_eq!(config.rate_limits.user, Quota::new(1200, 60, 100));
    assert_eq!(config.drain_delay, Duration::ZERO);
    assert_eq!(config.shutdown_timeout, Duration::from_secs(10));
}

#[test]
fn mail_settings_are_read_and_each_missing_one_is_named() {
    let off = config(&[]).unwrap();
    assert!(off.smtp.is_none());
    assert_eq!(off.invitation_ttl, Duration::from_secs(14 * 86_400));
    assert_eq!(off.email_verification_ttl, Duration::from_secs(86_400));
    let full = [
        ("SMTP_URL", "smtp://mailer:s3cret@127.0.0.1:2525"),
        ("SMTP_FROM", "Tasklight <no-reply@example.com>"),
        ("TASKLIGHT_PUBLIC_URL", "https://tasks.example.com/"),
        ("TASKLIGHT_INVITATION_TTL_SECS", "3600"),
    ];
    let on = config(&full).unwrap();
    let smtp = on.smtp.unwrap();
    assert_eq!(smtp.public_url, "https://tasks.example.com");
    assert_eq!(on.invitation_ttl, Duration::from_secs(3600));
    // The password never shows in the configuration's debug form.
    assert!(!format!("{smtp:?}").contains("s3cret"));
    for missing in ["SMTP_FROM", "TASKLIGHT_PUBLIC_URL"] {
        let without: Vec<_> = full
            .iter()
            .copied()
            .filter(|(k, _)| *k != missing)
            .collect();
        assert_eq!(config(&without).unwrap_err().variable, missing);
    }
    for (name, value) in [
        ("SMTP_URL", "http://mail.example.com"),
        ("SMTP_URL", "smtp://mail.example.com?tls=maybe"),
        ("SMTP_URL", "smtp://mail.example.com?password=s3cret"),
        ("SMTP_FROM", "not a mailbox"),
        ("TASKLIGHT_PUBLIC_URL", "tasks.example.com"),
        ("TASKLIGHT_INVITATION_TTL_SECS", "0"),
        ("TASKLIGHT_EMAIL_VERIFICATION_TTL_SECS", "1d"),
    ] {
        let mut vars: Vec<_> = full.to_vec();
        vars.retain(|(k, _)| *k != name);
        vars.push((name, value));
        let err = config(&vars).unwrap_err();
        assert_eq!(err.variable, name, "{value}");
        assert!(!err.to_string().contains("s3cret"));
    }
}

#[test]
fn a_read_replica_needs_a_postgresql_primary_and_a_postgresql_url() {
    let primary = ("DATABASE_URL", "postgres://app@db.internal/tasklight");
    let secret = ("JWT_SECRET", "a-secret-of-at-least-thirty-two-bytes!!");
    let replica = (
        "DATABASE_READ_URL",
        "postgres://app@replica.internal/tasklight",
    );
    let on_sqlite = config(&[replica]).unwrap_err();
    assert_eq!(on_sqlite.variable, "DATABASE_READ_URL");
    assert!(
        on_sqlite.problem.contains("PostgreSQL"),
        "{}",
        on_sqlite.problem
    );
    let not_postgres = config(&[
        primary,
        secret,
        ("DATABASE_READ_URL", "sqlite://replica.db"),
    ])
    .unwrap_err();
    assert_eq!(not_postgres.variable, "DATABASE_READ_URL");
    let lag = config(&[
        primary,
        secret,
        replica,
        ("TASKLIGHT_READ_MAX_LAG_MS", "soon"),
    ])
    .unwrap_err();
    assert_eq!(lag.variable, "TASKLIGHT_READ_MAX_LAG_MS");
    let read = config(&[primary, secret, replica])
        .unwrap()
        .read_replica
        .unwrap();
    assert_eq!(read.url, replica.1);
    assert_eq!(read.max_lag, std::time::Duration::from_secs(5));
    assert_eq!(
        read.read_your_writes_ttl,
        std::time::Duration::from_secs(60)
    );
    assert!(config(&[primary, secret]).unwrap().read_replica.is_none());
}

#[test]
fn housekeeping_retention_has_defaults_and_refuses_less_than_an_hour() {
    let defaults = config(&[]).unwrap();
    assert_eq!(
        defaults.invitation_retention,
        Duration::from_secs(30 * 86_400)
    );
    assert_eq!(
        defaults.webhooks.delivery_retention,
        Duration::from_secs(14 * 86_400)
    );
    let set = config(&[
        ("TASKLIGHT_INVITATION_RETENTION_SECS", "3600"),
        ("TASKLIGHT_WEBHOOK_DELIVERY_RETENTION_SECS", "7200"),
    ])
    .unwrap();
    assert_eq!(set.invitation_retention, Duration::from_secs(3600));
    assert_eq!(set.webhooks.delivery_retention, Duration::from_secs(7200));
    for name in [
        "TASKLIGHT_INVITATION_RETENTION_SECS",
        "TASKLIGHT_WEBHOOK_DELIVERY_RETENTION_SECS",
    ] {
        for value in ["59", "a week"] {
            assert_eq!(config(&[(name, value)]).unwrap_err().variable, name);
        }
    }
}
