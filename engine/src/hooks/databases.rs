//! Database awareness: which containers of a pod run a database server, and the commands
//! that dump it to stdout and restore it from stdin.
//!
//! Detection looks at the image (official and bitnami names, any registry, tag or digest)
//! and, for images it does not know, at environment variables only a server sets (a root
//! password, init arguments): an application that merely connects to a database carries
//! `*_HOST`/`*_PASSWORD` too and must not be mistaken for one.
//!
//! Commands are `sh -c` scripts run inside the database's own container with the tools its
//! image ships. Credentials are read from that container's environment when the command
//! runs (`"$MARIADB_ROOT_PASSWORD"`, `*_FILE` variants too), so no secret ever lands in an
//! annotation, a log or a process list.

use k8s_openapi::api::core::v1::{Container, PodSpec};

/// A database server family; the commands depend on it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Engine {
    /// MariaDB (`mariadb`, `bitnami/mariadb`, `bitnami/mariadb-galera`…).
    MariaDb,
    /// MySQL or a compatible server (`mysql`, `mysql/mysql-server`, `percona-server`…).
    MySql,
    /// PostgreSQL (`postgres`, `bitnami/postgresql`, `postgis/postgis`, `timescaledb`…).
    Postgres,
    /// Redis (`redis`, `bitnami/redis`, `redis/redis-stack-server`…).
    Redis,
    /// MongoDB (`mongo`, `bitnami/mongodb`, `percona-server-mongodb`…).
    MongoDb,
}

impl Engine {
    /// The engine's usual name, for logs and messages.
    pub fn name(self) -> &'static str {
        match self {
            Engine::MariaDb => "MariaDB",
            Engine::MySql => "MySQL",
            Engine::Postgres => "PostgreSQL",
            Engine::Redis => "Redis",
            Engine::MongoDb => "MongoDB",
        }
    }
}

impl std::fmt::Display for Engine {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.name())
    }
}

/// Why a container was recognised as a database.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Evidence {
    /// The image's name (the repository's last path component).
    Image(String),
    /// An environment variable only the server sets.
    Env(String),
}

/// A database server found in a pod: which container runs it and how to dump it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Database {
    /// The server family.
    pub engine: Engine,
    /// The container running it (a main container, or a sidecar init container).
    pub container: String,
    /// What gave it away.
    pub evidence: Evidence,
}

impl Database {
    /// The dump command: writes a consistent dump of every database to stdout.
    pub fn backup_command(&self) -> Vec<String> {
        shell(match self.engine {
            Engine::MariaDb | Engine::MySql => MYSQL_DUMP,
            Engine::Postgres => POSTGRES_DUMP,
            Engine::Redis => REDIS_DUMP,
            Engine::MongoDb => MONGO_DUMP,
        })
    }

    /// The restore command: reads a dump made by [`Database::backup_command`] from stdin
    /// and loads it into the running server.
    pub fn restore_command(&self) -> Vec<String> {
        shell(match self.engine {
            Engine::MariaDb | Engine::MySql => MYSQL_RESTORE,
            Engine::Postgres => POSTGRES_RESTORE,
            Engine::Redis => REDIS_RESTORE,
            Engine::MongoDb => MONGO_RESTORE,
        })
    }

    /// The dump file's extension (with its dot), so the file in the repository says what
    /// it holds.
    pub fn file_extension(&self) -> &'static str {
        match self.engine {
            Engine::MariaDb | Engine::MySql | Engine::Postgres => ".sql",
            Engine::Redis => ".rdb",
            Engine::MongoDb => ".archive",
        }
    }
}

/// The database servers running in a pod's containers and sidecars (init containers with
/// `restartPolicy: Always`), in spec order.
pub fn detect(pod_spec: &PodSpec) -> Vec<Database> {
    let sidecars = pod_spec
        .init_containers
        .iter()
        .flatten()
        .filter(|c| c.restart_policy.as_deref() == Some("Always"));
    sidecars
        .chain(pod_spec.containers.iter())
        .filter_map(detect_container)
        .collect()
}

/// The database a single container runs, if any.
pub fn detect_container(container: &Container) -> Option<Database> {
    let found = |engine, evidence| Database {
        engine,
        container: container.name.clone(),
        evidence,
    };
    let image = container.image.as_deref().unwrap_or_default();
    let name = image_name(image);
    if let Some(engine) = engine_of_image_name(name) {
        return Some(found(engine, Evidence::Image(name.to_string())));
    }
    let env: Vec<&str> = container
        .env
        .iter()
        .flatten()
        .map(|e| e.name.as_str())
        .collect();
    engine_of_env(&env).map(|(engine, var)| found(engine, Evidence::Env(var.to_string())))
}

/// The last path component of an image reference, without registry, tag or digest:
/// `docker.io/bitnami/postgresql:16.2.0@sha256:…` → `postgresql`.
pub fn image_name(image: &str) -> &str {
    let without_digest = image.split('@').next().unwrap_or_default();
    let last = without_digest.rsplit('/').next().unwrap_or_default();
    // A tag follows the last component's colon; a registry's port never reaches here.
    last.split(':').next().unwrap_or_default()
}

/// Words in an image name that mark a tool around a database rather than the server.
const NOT_A_SERVER: &[&str] = &[
    "exporter",
    "sentinel",
    "operator",
    "router",
    "proxy",
    "agent",
    "backup",
    "client",
    "cli",
    "shell",
    "tools",
    "metrics",
    "bouncer",
    "pgbouncer",
    "pgpool",
    "admin",
    "ui",
    "init",
    "migrate",
    "migrations",
    "mongosh",
    "express",
    "insight",
    "commander",
    "upgrade",
    "shard",
];

fn engine_of_image_name(name: &str) -> Option<Engine> {
    let lower = name.to_ascii_lowercase();
    let words: Vec<&str> = lower
        .split(['-', '_', '.'])
        .filter(|w| !w.is_empty())
        .collect();
    if words.iter().any(|w| NOT_A_SERVER.contains(w)) {
        return None;
    }
    // MongoDB first: `percona-server-mongodb` also starts with a MySQL name.
    if words.iter().any(|w| matches!(*w, "mongo" | "mongodb")) {
        return Some(Engine::MongoDb);
    }
    match *words.first()? {
        "mariadb" => Some(Engine::MariaDb),
        "mysql" | "percona" => Some(Engine::MySql),
        "postgres" | "postgresql" | "postgis" | "timescaledb" => Some(Engine::Postgres),
        "redis" => Some(Engine::Redis),
        _ => None,
    }
}

/// Variables only the server's image reads (set up a root account, initialise a data
/// directory). Client apps set `*_HOST`, `*_USER`, `*_PASSWORD`, never these.
const SERVER_ENV: &[(&str, Engine)] = &[
    ("MARIADB_ROOT_PASSWORD", Engine::MariaDb),
    ("MARIADB_ROOT_PASSWORD_FILE", Engine::MariaDb),
    ("MARIADB_ROOT_PASSWORD_HASH", Engine::MariaDb),
    ("MARIADB_ALLOW_EMPTY_ROOT_PASSWORD", Engine::MariaDb),
    ("MARIADB_RANDOM_ROOT_PASSWORD", Engine::MariaDb),
    ("MARIADB_REPLICATION_MODE", Engine::MariaDb),
    ("MYSQL_ROOT_PASSWORD", Engine::MySql),
    ("MYSQL_ROOT_PASSWORD_FILE", Engine::MySql),
    ("MYSQL_ALLOW_EMPTY_PASSWORD", Engine::MySql),
    ("MYSQL_RANDOM_ROOT_PASSWORD", Engine::MySql),
    ("MYSQL_REPLICATION_MODE", Engine::MySql),
    ("POSTGRES_INITDB_ARGS", Engine::Postgres),
    ("POSTGRES_INITDB_WALDIR", Engine::Postgres),
    ("POSTGRES_HOST_AUTH_METHOD", Engine::Postgres),
    ("POSTGRESQL_POSTGRES_PASSWORD", Engine::Postgres),
    ("POSTGRESQL_DATA_DIR", Engine::Postgres),
    ("POSTGRESQL_PORT_NUMBER", Engine::Postgres),
    ("POSTGRESQL_REPLICATION_MODE", Engine::Postgres),
    ("REDIS_AOF_ENABLED", Engine::Redis),
    ("REDIS_PORT_NUMBER", Engine::Redis),
    ("REDIS_REPLICATION_MODE", Engine::Redis),
    ("REDIS_DISABLE_COMMANDS", Engine::Redis),
    ("REDIS_ARGS", Engine::Redis),
    ("MONGO_INITDB_ROOT_USERNAME", Engine::MongoDb),
    ("MONGO_INITDB_ROOT_PASSWORD", Engine::MongoDb),
    ("MONGO_INITDB_ROOT_PASSWORD_FILE", Engine::MongoDb),
    ("MONGODB_ROOT_PASSWORD", Engine::MongoDb),
    ("MONGODB_ROOT_USER", Engine::MongoDb),
    ("MONGODB_REPLICA_SET_MODE", Engine::MongoDb),
    ("MONGODB_PORT_NUMBER", Engine::MongoDb),
];

fn engine_of_env<'a>(env: &[&'a str]) -> Option<(Engine, &'a str)> {
    let marker = env.iter().find_map(|name| {
        SERVER_ENV
            .iter()
            .find(|(v, _)| v == name)
            .map(|(_, e)| (*e, *name))
    });
    if marker.is_some() {
        return marker;
    }
    // The official postgres image needs only POSTGRES_PASSWORD; an app connecting to a
    // server sets a host next to it.
    let has = |v: &str| env.contains(&v);
    let connects = [
        "POSTGRES_HOST",
        "PGHOST",
        "POSTGRES_SERVER",
        "DB_HOST",
        "DATABASE_URL",
    ]
    .iter()
    .any(|v| has(v));
    env.iter()
        .find(|v| **v == "POSTGRES_PASSWORD" || **v == "POSTGRES_PASSWORD_FILE")
        .filter(|_| !connects)
        .map(|v| (Engine::Postgres, *v))
}

fn shell(script: &str) -> Vec<String> {
    vec!["/bin/sh".into(), "-c".into(), script.into()]
}

// The scripts below run under `sh` (dash, busybox or bash) in the database's container.
// `secret VAR` prints $VAR, or the contents of the file named by $VAR_FILE (the official
// images' Docker-secrets convention); passwords travel in the client's environment
// (MYSQL_PWD, PGPASSWORD, REDISCLI_AUTH), never on a command line.

/// Shell helpers shared by every script.
macro_rules! prelude {
    () => {
        r#"set -eu
(set -o pipefail) 2>/dev/null && set -o pipefail
secret() { eval "v=\${$1:-}"; eval "f=\${$1_FILE:-}"; if [ -z "$v" ] && [ -n "$f" ]; then v=$(cat "$f"); fi; printf '%s' "$v"; }
up() { i=0; until "$@" </dev/null >/dev/null 2>&1; do i=$((i+1)); [ $i -lt 120 ] || { echo "the server does not answer: $*" >&2; exit 1; }; sleep 0.5; done; }
"#
    };
}

/// MariaDB and MySQL: root if its password is known (official and bitnami names), else
/// the application's user; MariaDB's own tools when present (11.x ships no `mysql*`).
macro_rules! mysql_login {
    () => {
        r#"pw=$(secret MARIADB_ROOT_PASSWORD); [ -n "$pw" ] || pw=$(secret MYSQL_ROOT_PASSWORD)
user=${MARIADB_ROOT_USER:-${MYSQL_ROOT_USER:-root}}
if [ -z "$pw" ] && [ -z "${MARIADB_ALLOW_EMPTY_ROOT_PASSWORD:-}${MYSQL_ALLOW_EMPTY_PASSWORD:-}${ALLOW_EMPTY_PASSWORD:-}" ]; then
  app=${MARIADB_USER:-${MYSQL_USER:-}}
  if [ -n "$app" ]; then user=$app; pw=$(secret MARIADB_PASSWORD); [ -n "$pw" ] || pw=$(secret MYSQL_PASSWORD); fi
fi
export MYSQL_PWD="$pw"
"#
    };
}

const MYSQL_DUMP: &str = concat!(
    prelude!(),
    mysql_login!(),
    r#"dump=mariadb-dump; command -v mariadb-dump >/dev/null 2>&1 || dump=mysqldump
exec "$dump" --user="$user" --single-transaction --all-databases --routines --events --triggers --hex-blob
"#
);

const MYSQL_RESTORE: &str = concat!(
    prelude!(),
    mysql_login!(),
    r#"client=mariadb; command -v mariadb >/dev/null 2>&1 || client=mysql
up "$client" --user="$user" -e 'SELECT 1'
exec "$client" --user="$user"
"#
);

/// PostgreSQL: the superuser of the official image (`POSTGRES_USER`, default `postgres`) or
/// bitnami's (`postgres` with `POSTGRESQL_POSTGRES_PASSWORD`, else `POSTGRESQL_USERNAME`).
macro_rules! postgres_login {
    () => {
        r#"if [ -n "$(secret POSTGRESQL_POSTGRES_PASSWORD)" ]; then
  user=postgres; pw=$(secret POSTGRESQL_POSTGRES_PASSWORD)
elif [ -n "${POSTGRESQL_USERNAME:-}" ]; then
  user=$POSTGRESQL_USERNAME; pw=$(secret POSTGRESQL_PASSWORD)
else
  user=${POSTGRES_USER:-postgres}; pw=$(secret POSTGRES_PASSWORD)
fi
[ -z "${POSTGRESQL_PORT_NUMBER:-}" ] || export PGPORT="$POSTGRESQL_PORT_NUMBER"
[ -z "$pw" ] || export PGPASSWORD="$pw"
"#
    };
}

const POSTGRES_DUMP: &str = concat!(
    prelude!(),
    postgres_login!(),
    r#"exec pg_dumpall --clean --if-exists --username="$user"
"#
);

// Errors such as "current user cannot be dropped" are expected while a --clean dump
// replays its DROP ROLE lines, so psql does not stop on the first error; its messages go
// to stderr, which vbackup keeps in the restore log.
const POSTGRES_RESTORE: &str = concat!(
    prelude!(),
    postgres_login!(),
    r#"up psql --no-psqlrc --username="$user" --dbname=postgres -c 'SELECT 1'
exec psql --no-psqlrc --quiet --output=/dev/null --username="$user" --dbname=postgres
"#
);

/// Redis: bitnami's port and password variables; the official image has neither.
macro_rules! redis_login {
    () => {
        r#"pw=$(secret REDIS_PASSWORD)
[ -z "$pw" ] || export REDISCLI_AUTH="$pw"
port=${REDIS_PORT_NUMBER:-6379}
"#
    };
}

const REDIS_DUMP: &str = concat!(
    prelude!(),
    redis_login!(),
    r#"exec redis-cli -h 127.0.0.1 -p "$port" --no-auth-warning --rdb -
"#
);

// A running Redis cannot load an RDB from a client: the file replaces the server's own
// dump and `DEBUG RELOAD NOSAVE` loads it (needs `enable-debug-command local`, which
// bitnami's chart sets); with AOF on, a rewrite makes the restored data survive restarts.
const REDIS_RESTORE: &str = concat!(
    prelude!(),
    redis_login!(),
    r#"cli() { redis-cli -h 127.0.0.1 -p "$port" --no-auth-warning "$@"; }
up cli ping
dir=$(cli --raw config get dir | sed -n 2p)
file=$(cli --raw config get dbfilename | sed -n 2p)
[ -n "$dir" ] && [ -n "$file" ] || { echo "cannot read Redis's dir and dbfilename (CONFIG GET)" >&2; exit 1; }
cat > "$dir/$file.vbackup-restore"
mv "$dir/$file.vbackup-restore" "$dir/$file"
out=$(cli debug reload nosave 2>&1)
[ "$out" = OK ] || { echo "DEBUG RELOAD NOSAVE failed ($out): allow it with enable-debug-command local, or restart Redis to load $dir/$file" >&2; exit 1; }
if [ "$(cli --raw config get appendonly | sed -n 2p)" = yes ]; then cli bgrewriteaof >/dev/null; fi
"#
);

/// MongoDB: the root account of the official image or bitnami's; the password goes in a
/// config file read from a here-document (mongodump has no password variable).
macro_rules! mongo_login {
    () => {
        r#"user=${MONGO_INITDB_ROOT_USERNAME:-${MONGODB_ROOT_USER:-}}
pw=$(secret MONGO_INITDB_ROOT_PASSWORD); [ -n "$pw" ] || pw=$(secret MONGODB_ROOT_PASSWORD)
[ -n "$user" ] || [ -z "$pw" ] || user=root
set -- --host=127.0.0.1 --port="${MONGODB_PORT_NUMBER:-27017}" --archive
if [ -n "$user" ]; then
  quoted=$(printf '%s' "$pw" | sed "s/'/''/g")
  exec 3<<EOF
password: '$quoted'
EOF
  set -- "$@" --username="$user" --authenticationDatabase=admin --config=/dev/fd/3
fi
"#
    };
}

const MONGO_DUMP: &str = concat!(
    prelude!(),
    mongo_login!(),
    r#"exec mongodump "$@"
"#
);

const MONGO_RESTORE: &str = concat!(
    prelude!(),
    mongo_login!(),
    r#"exec mongorestore --drop "$@"
"#
);

#[cfg(test)]
mod tests {
    use super::*;
    use k8s_openapi::api::core::v1::EnvVar;

    fn container(name: &str, image: &str, env: &[&str]) -> Container {
        Container {
            name: name.into(),
            image: Some(image.into()),
            env: Some(
                env.iter()
                    .map(|n| EnvVar {
                        name: n.to_string(),
                        value: Some("x".into()),
                        ..Default::default()
                    })
                    .collect(),
            ),
            ..Default::default()
        }
    }

    #[test]
    fn images_from_any_registry_with_tags_and_digests() {
        let digest = "@sha256:0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef";
        let table: &[(&str, Option<Engine>)] = &[
            ("mariadb", Some(Engine::MariaDb)),
            ("mariadb:11.4", Some(Engine::MariaDb)),
            (
                "docker.io/library/mariadb:10.11-jammy",
                Some(Engine::MariaDb),
            ),
            (
                "docker.io/bitnami/mariadb:11.4.3-debian-12-r0",
                Some(Engine::MariaDb),
            ),
            ("bitnami/mariadb-galera:11.4", Some(Engine::MariaDb)),
            ("quay.io/sclorg/mariadb-105-c9s", Some(Engine::MariaDb)),
            ("mysql:8.4", Some(Engine::MySql)),
            (
                "container-registry.oracle.com/mysql/community-server:8.4",
                None,
            ),
            ("mysql/mysql-server:8.0", Some(Engine::MySql)),
            ("percona/percona-server:8.0", Some(Engine::MySql)),
            ("registry.local:5000/bitnami/mysql:8.0", Some(Engine::MySql)),
            ("postgres:16-alpine", Some(Engine::Postgres)),
            ("bitnami/postgresql:16.4.0", Some(Engine::Postgres)),
            ("bitnami/postgresql-repmgr:16", Some(Engine::Postgres)),
            ("postgis/postgis:16-3.4", Some(Engine::Postgres)),
            ("timescale/timescaledb:latest-pg16", Some(Engine::Postgres)),
            (
                "ghcr.io/cloudnative-pg/postgresql:16.4",
                Some(Engine::Postgres),
            ),
            ("redis:7.4-alpine", Some(Engine::Redis)),
            ("bitnami/redis:7.4", Some(Engine::Redis)),
            ("redis/redis-stack-server:7.4.0-v0", Some(Engine::Redis)),
            ("mongo:7", Some(Engine::MongoDb)),
            ("bitnami/mongodb:7.0", Some(Engine::MongoDb)),
            ("percona/percona-server-mongodb:7.0", Some(Engine::MongoDb)),
            // Tools around databases are not databases.
            ("prom/mysqld-exporter:v0.15.1", None),
            ("quay.io/prometheuscommunity/postgres-exporter", None),
            ("oliver006/redis_exporter:v1.62.0", None),
            ("bitnami/redis-sentinel:7.4", None),
            ("bitnami/pgbouncer:1.23", None),
            ("bitnami/pgpool:4", None),
            ("percona/mongodb_exporter:0.40", None),
            ("mysql/mysql-router:8.0", None),
            ("mongo-express:1.0", None),
            ("phpmyadmin:5", None),
            ("nginx:1.27", None),
            ("ghcr.io/example/postgres-backup-s3", None),
        ];
        for (image, want) in table {
            for variant in [image.to_string(), format!("{image}{digest}")] {
                let got = detect_container(&container("c", &variant, &[])).map(|d| d.engine);
                assert_eq!(got, *want, "{variant}");
            }
        }
    }

    #[test]
    fn unknown_images_are_recognised_by_server_only_env() {
        let table: &[(&[&str], Option<Engine>)] = &[
            (
                &["MARIADB_ROOT_PASSWORD", "MARIADB_DATABASE"],
                Some(Engine::MariaDb),
            ),
            (&["MARIADB_RANDOM_ROOT_PASSWORD"], Some(Engine::MariaDb)),
            (
                &["MYSQL_ROOT_PASSWORD", "MYSQL_DATABASE"],
                Some(Engine::MySql),
            ),
            (&["MYSQL_ALLOW_EMPTY_PASSWORD"], Some(Engine::MySql)),
            (
                &["POSTGRES_PASSWORD", "POSTGRES_DB"],
                Some(Engine::Postgres),
            ),
            (&["POSTGRES_PASSWORD_FILE"], Some(Engine::Postgres)),
            (&["POSTGRESQL_POSTGRES_PASSWORD"], Some(Engine::Postgres)),
            (
                &["POSTGRESQL_PORT_NUMBER", "POSTGRESQL_PASSWORD"],
                Some(Engine::Postgres),
            ),
            (
                &["REDIS_AOF_ENABLED", "REDIS_PASSWORD"],
                Some(Engine::Redis),
            ),
            (&["REDIS_PORT_NUMBER"], Some(Engine::Redis)),
            (
                &["MONGO_INITDB_ROOT_USERNAME", "MONGO_INITDB_ROOT_PASSWORD"],
                Some(Engine::MongoDb),
            ),
            (&["MONGODB_ROOT_PASSWORD"], Some(Engine::MongoDb)),
            // Applications talking to a database.
            (
                &["POSTGRES_HOST", "POSTGRES_PASSWORD", "POSTGRES_USER"],
                None,
            ),
            (&["DATABASE_URL", "POSTGRES_PASSWORD"], None),
            (
                &[
                    "MYSQL_HOST",
                    "MYSQL_USER",
                    "MYSQL_PASSWORD",
                    "MYSQL_DATABASE",
                ],
                None,
            ),
            (&["REDIS_HOST", "REDIS_PASSWORD"], None),
            (&["MONGO_URL"], None),
            // Kubernetes' service links for a Service named `redis` or `mysql`.
            (
                &["REDIS_PORT", "REDIS_SERVICE_HOST", "REDIS_PORT_6379_TCP"],
                None,
            ),
            (&["MYSQL_PORT", "MYSQL_SERVICE_PORT"], None),
            (&[], None),
        ];
        for (env, want) in table {
            let got = detect_container(&container("c", "example.com/app:1", env)).map(|d| d.engine);
            assert_eq!(got, *want, "{env:?}");
        }
    }

    #[test]
    fn detection_covers_sidecars_but_not_plain_init_containers() {
        let mut sidecar = container("cache", "redis:7", &[]);
        sidecar.restart_policy = Some("Always".into());
        let spec = PodSpec {
            init_containers: Some(vec![container("migrate", "postgres:16", &[]), sidecar]),
            containers: vec![
                container(
                    "app",
                    "example.com/shop:2",
                    &["POSTGRES_HOST", "POSTGRES_PASSWORD"],
                ),
                container("db", "postgres:16", &["POSTGRES_PASSWORD"]),
            ],
            ..Default::default()
        };
        let found: Vec<_> = detect(&spec)
            .into_iter()
            .map(|d| (d.container, d.engine))
            .collect();
        assert_eq!(
            found,
            [
                ("cache".to_string(), Engine::Redis),
                ("db".to_string(), Engine::Postgres)
            ]
        );
    }

    fn db(engine: Engine) -> Database {
        Database {
            engine,
            container: "db".into(),
            evidence: Evidence::Image("x".into()),
        }
    }

    #[test]
    fn commands_use_the_images_tools_and_never_hold_a_secret() {
        let table = [
            (
                Engine::MariaDb,
                "--single-transaction --all-databases",
                "mariadb",
                ".sql",
            ),
            (Engine::MySql, "mysqldump", "mysql", ".sql"),
            (Engine::Postgres, "pg_dumpall --clean", "psql", ".sql"),
            (Engine::Redis, "--rdb -", "debug reload nosave", ".rdb"),
            (Engine::MongoDb, "mongodump", "mongorestore", ".archive"),
        ];
        for (engine, dump, restore, ext) in table {
            let d = db(engine);
            let (b, r) = (d.backup_command(), d.restore_command());
            assert_eq!(b[..2], ["/bin/sh", "-c"], "{engine}");
            assert!(b[2].contains(dump), "{engine}: {}", b[2]);
            assert!(r[2].contains(restore), "{engine}: {}", r[2]);
            assert!(b[2].contains("set -o pipefail"), "{engine}");
            assert!(!b[2].contains("FLUSH TABLES"), "{engine}");
            // Passwords are read from env, never passed as arguments.
            assert!(
                !b[2].contains("-p\"$") && !b[2].contains("--password"),
                "{engine}"
            );
            assert_eq!(d.file_extension(), ext);
        }
    }

    /// Runs a generated script with a fake client that prints how it was called, so the
    /// credential logic is checked by a real shell.
    fn run_with_fake(script: &str, tool: &str, env: &[(&str, &str)]) -> String {
        let dir = tempfile::tempdir().unwrap();
        let fake = dir.path().join(tool);
        std::fs::write(
            &fake,
            "#!/bin/sh\necho \"$0 $* MYSQL_PWD=${MYSQL_PWD:-} PGPASSWORD=${PGPASSWORD:-} PGPORT=${PGPORT:-}\"\n\
             if [ -r /dev/fd/3 ]; then cat /dev/fd/3; fi\n",
        )
        .unwrap();
        use std::os::unix::fs::PermissionsExt;
        std::fs::set_permissions(&fake, std::fs::Permissions::from_mode(0o755)).unwrap();
        // Only the fake and the few tools the scripts use, so the machine's own database
        // clients cannot stand in for it.
        for tool in ["cat", "sed"] {
            std::os::unix::fs::symlink(format!("/usr/bin/{tool}"), dir.path().join(tool)).unwrap();
        }
        let out = std::process::Command::new("/bin/sh")
            .arg("-c")
            .arg(script)
            .env_clear()
            .env("PATH", dir.path())
            .envs(env.iter().copied())
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        let s = String::from_utf8(out.stdout).unwrap();
        s.replace(&format!("{}/", dir.path().display()), "")
    }

    #[test]
    fn credentials_come_from_the_containers_env_at_run_time() {
        let dump = db(Engine::MariaDb).backup_command().remove(2);
        let out = run_with_fake(
            &dump,
            "mariadb-dump",
            &[("MARIADB_ROOT_PASSWORD", "s3 'cr\"et")],
        );
        assert!(
            out.starts_with("mariadb-dump --user=root --single-transaction"),
            "{out}"
        );
        assert!(out.contains("MYSQL_PWD=s3 'cr\"et "), "{out}");

        let out = run_with_fake(&dump, "mysqldump", &[("MYSQL_ROOT_PASSWORD", "pw")]);
        assert!(out.starts_with("mysqldump --user=root"), "{out}");

        let file = tempfile::NamedTempFile::new().unwrap();
        std::fs::write(file.path(), "from-file").unwrap();
        let path = file.path().to_str().unwrap();
        let out = run_with_fake(
            &dump,
            "mariadb-dump",
            &[("MARIADB_ROOT_PASSWORD_FILE", path)],
        );
        assert!(out.contains("MYSQL_PWD=from-file "), "{out}");

        // No root password known: the application's account.
        let out = run_with_fake(
            &dump,
            "mariadb-dump",
            &[
                ("MARIADB_RANDOM_ROOT_PASSWORD", "1"),
                ("MARIADB_USER", "shop"),
                ("MARIADB_PASSWORD", "apw"),
            ],
        );
        assert!(
            out.contains("--user=shop") && out.contains("MYSQL_PWD=apw "),
            "{out}"
        );

        let pg = db(Engine::Postgres).backup_command().remove(2);
        let out = run_with_fake(
            &pg,
            "pg_dumpall",
            &[("POSTGRES_USER", "app"), ("POSTGRES_PASSWORD", "p")],
        );
        assert!(
            out.starts_with("pg_dumpall --clean --if-exists --username=app"),
            "{out}"
        );
        assert!(out.contains("PGPASSWORD=p "), "{out}");
        let out = run_with_fake(
            &pg,
            "pg_dumpall",
            &[
                ("POSTGRESQL_POSTGRES_PASSWORD", "root"),
                ("POSTGRESQL_USERNAME", "app"),
                ("POSTGRESQL_PORT_NUMBER", "5433"),
            ],
        );
        assert!(
            out.contains("--username=postgres") && out.contains("PGPASSWORD=root PGPORT=5433"),
            "{out}"
        );

        let mongo = db(Engine::MongoDb).backup_command().remove(2);
        let out = run_with_fake(
            &mongo,
            "mongodump",
            &[
                ("MONGO_INITDB_ROOT_USERNAME", "admin"),
                ("MONGO_INITDB_ROOT_PASSWORD", "it's $x"),
            ],
        );
        assert!(
            out.contains(
                "--archive --username=admin --authenticationDatabase=admin --config=/dev/fd/3"
            ),
            "{out}"
        );
        assert!(out.contains("password: 'it''s $x'"), "{out}");
        assert!(
            !out.split_whitespace().any(|w| w.contains("it's")),
            "password on the command line: {out}"
        );
    }
}
