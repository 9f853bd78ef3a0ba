"""A PostgreSQL server for the tests (Optuna ``RDBStorage`` with a postgresql URL).

``postgres_url()`` finds one, in this order:

1. ``TLCORE_TEST_POSTGRES_URL``: a server someone else started (CI starts the
   Debian cluster in ``.ci/run`` and sets it).
2. A private throw-away cluster: ``initdb`` + ``pg_ctl`` from the highest version
   under ``/usr/lib/postgresql/*/bin``, in a temporary folder, listening on a unix
   socket in that folder and on 127.0.0.1 at a free port, ``fsync=off``, trust
   authentication, with a database ``tlcore_test``. ``initdb`` refuses to run as
   root, so as root the commands run as the ``postgres`` system user
   (``runuser -u postgres --``) and the folder belongs to that user. The cluster is
   stopped (``pg_ctl stop -m immediate``) and its folder removed at interpreter
   exit, or earlier with ``stop_private_cluster()``.
3. Otherwise ``None``; ``unavailable_reason()`` then says why.

``require_postgres()`` is true when ``TLCORE_REQUIRE_POSTGRES=1``: a missing server
must then fail the tests that need one rather than skip them.

``create_database(url, name)`` / ``drop_database(url, name)`` make and remove a
database on the server of ``url`` (the ``fresh_postgres_url`` fixture uses them).
"""

from __future__ import annotations

import atexit
import os
import re
import shutil
import socket
import subprocess
import tempfile
from dataclasses import dataclass, field
from pathlib import Path

URL_ENV = "TLCORE_TEST_POSTGRES_URL"
REQUIRE_ENV = "TLCORE_REQUIRE_POSTGRES"
DB_NAME = "tlcore_test"
PG_LIB = Path("/usr/lib/postgresql")
RUN_AS = "postgres"  # the system user the commands run as when we are root

_cluster: PrivateCluster | None = None
_reason: str = ""


def require_postgres() -> bool:
    """True when ``TLCORE_REQUIRE_POSTGRES=1``: no server is then a failure, not a skip."""
    return os.environ.get(REQUIRE_ENV, "").strip() == "1"


def unavailable_reason() -> str:
    """Why the last ``postgres_url()`` returned ``None`` ("" if it did not)."""
    return _reason


def postgres_url() -> str | None:
    """A SQLAlchemy URL of a PostgreSQL database for the tests, or ``None``.

    Starts at most one private cluster per process; later calls return its URL.
    """
    global _cluster, _reason
    _reason = ""
    env_url = os.environ.get(URL_ENV, "").strip()
    if env_url:
        return env_url
    if _cluster is not None:
        return _cluster.url
    try:
        _cluster = PrivateCluster.start()
    except ClusterUnavailable as exc:
        _reason = str(exc)
        return None
    atexit.register(stop_private_cluster)
    return _cluster.url


def stop_private_cluster() -> None:
    """Stop the private cluster (if one was started) and remove its folder. Idempotent."""
    global _cluster
    cluster, _cluster = _cluster, None
    if cluster is not None:
        cluster.stop()


class ClusterUnavailable(RuntimeError):
    """No private cluster could be started (no binaries, no ``postgres`` user, a failed command)."""


def find_bin_dir(lib: Path | None = None) -> Path | None:
    """``/usr/lib/postgresql/<highest version>/bin`` holding ``initdb`` and ``pg_ctl``, or ``None``."""
    lib = PG_LIB if lib is None else lib

    def version_key(p: Path) -> tuple[int, ...]:
        return tuple(int(n) for n in re.findall(r"\d+", p.parent.name)) or (-1,)

    candidates = [b for b in lib.glob("*/bin") if (b / "initdb").is_file() and (b / "pg_ctl").is_file()]
    return max(candidates, key=version_key) if candidates else None


def free_port() -> int:
    """A TCP port on 127.0.0.1 free right now (bind to port 0, read it, close)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@dataclass
class PrivateCluster:
    """A throw-away cluster in ``root`` (``root/data``, socket and log in ``root``)."""

    bin_dir: Path
    root: Path
    port: int
    as_user: str | None  # run commands as this user (we are root), or None (as ourselves)
    url: str = ""
    _stopped: bool = field(default=False, repr=False)

    @property
    def data_dir(self) -> Path:
        return self.root / "data"

    @property
    def log_file(self) -> Path:
        return self.root / "postgres.log"

    @classmethod
    def start(cls, attempts: int = 3) -> PrivateCluster:
        bin_dir = find_bin_dir()
        if bin_dir is None:
            raise ClusterUnavailable(f"no initdb/pg_ctl under {PG_LIB}/*/bin")
        as_user = None
        if os.geteuid() == 0:
            if shutil.which("runuser") is None:
                raise ClusterUnavailable("running as root (initdb refuses root) and no runuser to switch user")
            try:
                import pwd

                pw = pwd.getpwnam(RUN_AS)
            except KeyError:
                raise ClusterUnavailable(
                    f"running as root (initdb refuses root) and no {RUN_AS!r} system user"
                ) from None
            as_user = RUN_AS
        # As root the folder must be reachable by the postgres user: /tmp (world-
        # traversable), not a TMPDIR that may sit under /root. The socket path must
        # stay under ~107 bytes, so a short folder also matters.
        base = "/tmp" if as_user and Path("/tmp").is_dir() else None
        root = Path(tempfile.mkdtemp(prefix="tlcore-pg-", dir=base))
        if as_user:
            os.chown(root, pw.pw_uid, pw.pw_gid)
        cluster = cls(bin_dir=bin_dir, root=root, port=0, as_user=as_user)
        try:
            cluster._initdb()
            last: Exception | None = None
            for _ in range(attempts):  # a free port can be taken before the server binds it
                cluster.port = free_port()
                try:
                    cluster._pg_ctl_start()
                    break
                except ClusterUnavailable as exc:
                    last = exc
            else:
                raise last or ClusterUnavailable("pg_ctl start failed")
            cluster._run("createdb", "-h", "127.0.0.1", "-p", str(cluster.port), "-U", "postgres", DB_NAME)
            cluster.url = f"postgresql://postgres@127.0.0.1:{cluster.port}/{DB_NAME}"
        except BaseException:
            cluster.stop()
            raise
        return cluster

    def _run(self, tool: str, *args: str, timeout: float = 120) -> subprocess.CompletedProcess[str]:
        cmd = [str(self.bin_dir / tool), *args]
        if self.as_user:
            cmd = ["runuser", "-u", self.as_user, "--", *cmd]
        try:
            proc = subprocess.run(
                cmd,
                cwd=self.root,  # a folder the postgres user can enter (not the repo under root)
                stdin=subprocess.DEVNULL,
                capture_output=True,
                text=True,
                timeout=timeout,
            )
        except (OSError, subprocess.TimeoutExpired) as exc:
            raise ClusterUnavailable(f"{tool} failed: {exc}") from exc
        if proc.returncode != 0:
            out = (proc.stderr or proc.stdout).strip()[-2000:]
            raise ClusterUnavailable(f"{tool} exited {proc.returncode}: {out}")
        return proc

    def _initdb(self) -> None:
        self._run(
            "initdb", "-D", str(self.data_dir), "-A", "trust", "-U", "postgres",
            "-E", "UTF8", "--locale=C", "--no-sync",
        )  # fmt: skip

    def _pg_ctl_start(self) -> None:
        opts = (
            f"-p {self.port} -c listen_addresses=127.0.0.1 -k {self.root} "
            "-c fsync=off -c synchronous_commit=off -c full_page_writes=off"
        )
        try:
            self._run(
                "pg_ctl", "-D", str(self.data_dir), "-l", str(self.log_file),
                "-w", "-t", "60", "-o", opts, "start",
            )  # fmt: skip
        except ClusterUnavailable as exc:
            log = self.log_file.read_text(errors="replace")[-2000:] if self.log_file.exists() else ""
            self._pg_ctl_stop()  # in case it half started
            raise ClusterUnavailable(f"{exc}\n{log}") from exc

    def _pg_ctl_stop(self) -> None:
        if (self.data_dir / "postmaster.pid").exists():
            try:
                self._run("pg_ctl", "-D", str(self.data_dir), "-m", "immediate", "-w", "-t", "30", "stop")
            except ClusterUnavailable:
                pass

    def stop(self) -> None:
        """``pg_ctl stop -m immediate`` and remove the folder. Idempotent."""
        if self._stopped:
            return
        self._stopped = True
        self._pg_ctl_stop()
        shutil.rmtree(self.root, ignore_errors=True)


def _admin_engine(url: str):
    import sqlalchemy

    return sqlalchemy.create_engine(url, isolation_level="AUTOCOMMIT", poolclass=sqlalchemy.pool.NullPool)


def url_with_database(url: str, name: str) -> str:
    """``url`` with its database replaced by ``name`` (password kept)."""
    from sqlalchemy.engine import make_url

    return make_url(url).set(database=name).render_as_string(hide_password=False)


def _admin_statement(url: str, name: str, sql: str) -> None:
    """Run ``sql`` (holding ``{name}``) on the server of ``url``, outside a transaction."""
    if not re.fullmatch(r"[a-z_][a-z0-9_]*", name):
        raise ValueError(f"unsafe database name {name!r}")
    import sqlalchemy

    engine = _admin_engine(url)
    try:
        with engine.connect() as conn:
            conn.execute(sqlalchemy.text(sql.format(name=name)))
    finally:
        engine.dispose()


def create_database(url: str, name: str) -> str:
    """``CREATE DATABASE name`` on the server of ``url``; the new database's URL."""
    _admin_statement(url, name, 'CREATE DATABASE "{name}"')
    return url_with_database(url, name)


def drop_database(url: str, name: str) -> None:
    """``DROP DATABASE IF EXISTS name WITH (FORCE)`` (PostgreSQL 13+) on the server of ``url``."""
    _admin_statement(url, name, 'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
