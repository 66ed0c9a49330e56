"""The local stack: PostgreSQL, an MLflow tracking server on it, and a Ray head.

``make stack-up`` / ``make stack-down`` call ``python -m tssweep.stack up|down``; it is
the whole distributed setup on one machine, to try before a real cluster:

- PostgreSQL on 127.0.0.1 (data under the stack dir) with two databases, ``mlflow``
  for the tracking server and ``optuna`` for shared studies (its schema is created
  here, once, so that sweep processes starting together never race to create it);
- ``mlflow server`` on that database, on 127.0.0.1, one worker, job execution off,
  artifacts proxied to the stack dir;
- a Ray head in a private network namespace. Ray binds some listeners to every
  interface whatever ``--node-ip-address`` says, so it gets a namespace of its own
  whose only interface is loopback; relays carry the MLflow and PostgreSQL ports into
  it. Commands that use Ray run in there too: ``python -m tssweep.stack exec -- CMD``.

``down`` stops exactly what ``up`` started: the process groups it recorded and every
process inside its namespace, never other Ray or PostgreSQL processes (``ray stop``
would kill every Ray process on the machine). The data stays for the next ``up``.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import fcntl
import glob
import hashlib
import json
import os
import pwd
import shutil
import signal
import socket
import struct
import subprocess
import sys
import tempfile
import time
import urllib.request
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Callable

ROOT = Path(os.environ.get("TSSWEEP_ROOT") or Path(__file__).resolve().parents[2])
# Everything started here keeps these out of $HOME and off the network.
QUIET_ENV = {"MLFLOW_DISABLE_TELEMETRY": "true", "RAY_USAGE_STATS_ENABLED": "0",
             "RAY_AUTH_MODE": "disabled", "DO_NOT_TRACK": "1"}
_STATE = "state.json"


@dataclass
class Stack:
    """Where the stack lives and which ports it uses; read from the environment."""

    dir: Path = field(default_factory=lambda: Path(os.environ.get(
        "TSSWEEP_STACK_DIR", ROOT / "outputs" / "stack")).resolve())
    mlflow_port: int = field(default_factory=lambda: _env_int("TSSWEEP_STACK_MLFLOW_PORT", 5000))
    pg_port: int = field(default_factory=lambda: _env_int("TSSWEEP_STACK_PG_PORT", 55432))
    ray_port: int = field(default_factory=lambda: _env_int("TSSWEEP_STACK_RAY_PORT", 6379))
    cpus: int = field(default_factory=lambda: _env_int("TSSWEEP_STACK_CPUS", os.cpu_count() or 1))

    @property
    def pg_dir(self) -> Path:
        return self.dir / "postgres"

    @property
    def mlflow_uri(self) -> str:
        return f"http://127.0.0.1:{self.mlflow_port}"

    def pg_url(self, database: str) -> str:
        return f"postgresql+psycopg://tssweep@127.0.0.1:{self.pg_port}/{database}"

    @property
    def ray_address(self) -> str:
        return f"127.0.0.1:{self.ray_port}"

    @property
    def ray_temp(self) -> str:
        # Ray's socket paths must stay under 107 characters: a short dir in /tmp
        return f"/tmp/tssweep-ray-{hashlib.sha1(str(self.dir).encode()).hexdigest()[:8]}"


@dataclass
class State:
    """What ``up`` started, so that ``down`` stops that and nothing else."""

    netns_pid: int = 0
    netns: str = ""  # the namespace's identity, "net:[inode]": outlives its first process
    groups: dict[str, int] = field(default_factory=dict)  # name -> process group id
    pg_bin: str = ""
    pg_user: str = ""


class StackError(RuntimeError):
    pass


# ---------------------------------------------------------------- up / down / exec


def up(stack: Stack) -> State:
    state = read_state(stack)
    if state is not None and alive(state.netns_pid):
        print(f"The stack in {stack.dir} is already up.")
        return state
    stack.dir.mkdir(parents=True, exist_ok=True)
    state = State()
    try:
        _start_postgres(stack, state)
        _start_mlflow(stack, state)
        _start_namespace(stack, state)
        _start_ray(stack, state)
    except BaseException:
        _write_state(stack, state)
        down(stack)
        raise
    _write_state(stack, state)
    print(f"""Stack up (stop it with `make stack-down`):
  MLflow server   {stack.mlflow_uri}   (the dashboard; tracking=server uses it)
  PostgreSQL      {stack.pg_url('optuna')}   (Optuna storage)
  Ray head        {stack.ray_address}  inside a private network namespace: run Ray sweeps with
                  .venv/bin/python -m tssweep.stack exec -- python src/train.py -m cluster=ray ...""")
    return state


def down(stack: Stack) -> list[str]:
    """Stop the stack; returns what could not be stopped (empty when all went)."""
    state = read_state(stack)
    if state is None:
        print(f"No stack is recorded in {stack.dir}.")
        return []
    inside = namespace_pids(state)
    for pid in inside:  # Ray first: its workers log to MLflow until they end
        _signal(pid, signal.SIGTERM)
    # Ray keeps no state worth a wait: its head and raylet ignore SIGTERM for long seconds
    _wait_gone(inside, 3)
    for pid in namespace_pids(state) or inside:
        _signal(pid, signal.SIGKILL)
    if state.pg_bin and (stack.pg_dir / "data" / "postmaster.pid").exists():
        _as_pg_user(state, [f"{state.pg_bin}/pg_ctl", "-D", str(stack.pg_dir / "data"), "stop",
                            "-m", "fast", "-w", "-t", "30"], check=False)
    for name, pgid in state.groups.items():
        _kill_group(pgid)
    left = [f"pid {pid}" for pid in inside if alive(pid)]
    left += [f"{name} (process group {pgid})" for name, pgid in state.groups.items() if group_alive(pgid)]
    if _pg_running(stack):
        left.append("postgres (see postmaster.pid)")
    shutil.rmtree(stack.ray_temp, ignore_errors=True)
    if not left:
        (stack.dir / _STATE).unlink(missing_ok=True)
        print(f"Stack down: nothing of it runs any more; its data stays in {stack.dir}.")
    else:
        print("Stack down, but still running: " + ", ".join(left), file=sys.stderr)
    return left


def exec_inside(stack: Stack, command: list[str]) -> None:
    """Replace this process with ``command`` run inside the stack's network namespace."""
    state = read_state(stack)
    if state is None or not alive(state.netns_pid):
        raise StackError(f"No stack runs from {stack.dir}: start it with `make stack-up`.")
    # `python` in there is this environment's, the one that has tssweep and Ray
    path = f"{Path(sys.executable).parent}{os.pathsep}{os.environ.get('PATH', '')}"
    env = {**os.environ, **QUIET_ENV, "RAY_ADDRESS": stack.ray_address,
           "TSSWEEP_STACK_DIR": str(stack.dir), "PATH": path}
    os.execvpe("nsenter", [*_enter(state.netns_pid), "--", *command], env)


# ---------------------------------------------------------------- PostgreSQL


def _start_postgres(stack: Stack, state: State) -> None:
    state.pg_bin = _pg_bin()
    state.pg_user = _pg_user()
    data = stack.pg_dir / "data"
    stack.pg_dir.mkdir(parents=True, exist_ok=True)
    if state.pg_user != _me():
        user = pwd.getpwnam(state.pg_user)
        os.chown(stack.pg_dir, user.pw_uid, user.pw_gid)
        if _as_pg_user(state, ["test", "-w", str(stack.pg_dir)], check=False).returncode:
            raise StackError(f"PostgreSQL runs as {state.pg_user!r} (it refuses root), who cannot "
                             f"reach {stack.pg_dir}: set TSSWEEP_STACK_DIR to a directory every "
                             "user can traverse, such as /var/tmp/tssweep-stack.")
    if not (data / "PG_VERSION").exists():
        _as_pg_user(state, [f"{state.pg_bin}/initdb", "-D", str(data), "-U", "tssweep",
                            "--auth=trust", "-E", "UTF8", "--no-instructions"])
    if _pg_running(stack):
        raise StackError(f"A PostgreSQL already runs on {data} (see postmaster.pid): stop it first.")
    _check_port_free(stack.pg_port, "TSSWEEP_STACK_PG_PORT")
    # pg_ctl starts the server in its own session: the group is the postmaster's pid
    _as_pg_user(state, [f"{state.pg_bin}/pg_ctl", "-D", str(data), "-l", str(stack.pg_dir / "server.log"),
                        "-w", "-t", "60", "start", "-o",
                        f"-c listen_addresses=127.0.0.1 -p {stack.pg_port} -k {stack.pg_dir} "
                        "-c max_connections=200"])
    postmaster = int((data / "postmaster.pid").read_text().split()[0])
    if os.getpgid(postmaster) == postmaster:  # pg_ctl put it in a session of its own
        state.groups["postgres"] = postmaster
    _create_databases(stack)


def _create_databases(stack: Stack) -> None:
    import optuna
    import psycopg

    with psycopg.connect(host="127.0.0.1", port=stack.pg_port, user="tssweep", dbname="postgres",
                         autocommit=True) as conn:
        have = {row[0] for row in conn.execute("SELECT datname FROM pg_database")}
        for database in ("mlflow", "optuna"):
            if database not in have:
                conn.execute(f'CREATE DATABASE "{database}"')
    optuna.storages.RDBStorage(stack.pg_url("optuna"))  # the schema, before any worker


def _pg_bin() -> str:
    found = os.environ.get("TSSWEEP_PG_BINDIR")
    candidates = [found] if found else [
        os.path.dirname(os.path.realpath(p)) for p in [shutil.which("initdb")] if p
    ] + sorted(glob.glob("/usr/lib/postgresql/*/bin"), key=lambda p: int(p.split("/")[-2]), reverse=True)
    for directory in candidates:
        if os.access(f"{directory}/initdb", os.X_OK) and os.access(f"{directory}/pg_ctl", os.X_OK):
            return directory
    raise StackError("The PostgreSQL server (initdb, pg_ctl) is not installed. Install it, e.g. "
                     "`apt-get install postgresql` or `brew install postgresql`, or set "
                     "TSSWEEP_PG_BINDIR to the directory holding initdb and pg_ctl.")


def _pg_user() -> str:
    if os.geteuid() != 0:
        return _me()
    for name in ("postgres", "nobody"):
        try:
            return pwd.getpwnam(name).pw_name
        except KeyError:
            continue
    raise StackError("PostgreSQL refuses to run as root and no 'postgres' or 'nobody' user exists.")


def _me() -> str:
    return pwd.getpwuid(os.geteuid()).pw_name


def _as_pg_user(state: State, command: list[str], check: bool = True) -> subprocess.CompletedProcess:
    if state.pg_user != _me():
        command = ["setpriv", f"--reuid={state.pg_user}", f"--regid={state.pg_user}",
                   "--init-groups", *command]
    done = subprocess.run(command, capture_output=True, text=True, cwd="/")
    if check and done.returncode:
        raise StackError(f"{' '.join(command)} failed:\n{done.stdout}{done.stderr}")
    return done


def _pg_running(stack: Stack) -> bool:
    pid_file = stack.pg_dir / "data" / "postmaster.pid"
    try:
        return alive(int(pid_file.read_text().split()[0]))
    except (OSError, ValueError, IndexError):
        return False


# ---------------------------------------------------------------- MLflow server


def _start_mlflow(stack: Stack, state: State) -> None:
    _check_port_free(stack.mlflow_port, "TSSWEEP_STACK_MLFLOW_PORT")
    artifacts = stack.dir / "mlartifacts"
    artifacts.mkdir(exist_ok=True)
    # one uvicorn worker: several add about 40 ms to every call; job execution would
    # start seven more processes that tssweep does not use
    server = _spawn("mlflow", stack, [
        str(Path(sys.executable).parent / "mlflow"), "server",
        "--backend-store-uri", stack.pg_url("mlflow"), "--artifacts-destination", str(artifacts),
        "--host", "127.0.0.1", "--port", str(stack.mlflow_port), "--workers", "1"],
        env={"MLFLOW_SERVER_ENABLE_JOB_EXECUTION": "false"})
    state.groups["mlflow"] = server.pid
    _wait(lambda: _http_ok(f"{stack.mlflow_uri}/health"), 180, "the MLflow server", stack.dir / "mlflow.log",
          server)
    # the MLflow port, reachable from inside the namespace through a Unix socket
    relay = _spawn("relay", stack, [sys.executable, "-m", "tssweep.stack", "relay",
                                    f"unix:{stack.dir / 'mlflow.sock'}", f"tcp:127.0.0.1:{stack.mlflow_port}"])
    state.groups["relay"] = relay.pid
    _wait(lambda: (stack.dir / "mlflow.sock").exists(), 20, "the MLflow relay", stack.dir / "relay.log", relay)


# ---------------------------------------------------------------- namespace and Ray


def _start_namespace(stack: Stack, state: State) -> None:
    ready = stack.dir / "netns.ready"
    ready.unlink(missing_ok=True)
    pg_socket = stack.pg_dir / f".s.PGSQL.{stack.pg_port}"
    unshare = ["unshare", "--net"] if os.geteuid() == 0 else ["unshare", "--net", "--map-root-user"]
    holder = _spawn("netns", stack, [
        *unshare, "--", sys.executable, "-m", "tssweep.stack", "namespace", str(ready),
        f"tcp:127.0.0.1:{stack.mlflow_port}=unix:{stack.dir / 'mlflow.sock'}",
        f"tcp:127.0.0.1:{stack.pg_port}=unix:{pg_socket}"])
    state.groups["netns"] = holder.pid
    _wait(ready.exists, 20, "the network namespace", stack.dir / "netns.log", holder)
    state.netns_pid = int(ready.read_text())
    state.netns = os.readlink(f"/proc/{state.netns_pid}/ns/net")


def _start_ray(stack: Stack, state: State) -> None:
    ray = str(Path(sys.executable).parent / "ray")
    if not os.access(ray, os.X_OK):
        raise StackError("Ray is not installed in this environment: `make stack-up` installs it "
                         "(pip install -e '.[ray,postgres]').")
    head = _spawn("ray", stack, [
        *_enter(state.netns_pid), "--", ray, "start", "--head", "--block",
        "--port", str(stack.ray_port), "--node-ip-address", "127.0.0.1", "--num-cpus", str(stack.cpus),
        "--include-dashboard=false", "--disable-usage-stats", "--temp-dir", stack.ray_temp,
        "--object-store-memory", str(200 * 1024 ** 2)], cwd=ROOT)
    state.groups["ray"] = head.pid
    probe = [*_enter(state.netns_pid), "--", sys.executable, "-c",
             "import ray; ray.init(address='auto', logging_level='ERROR'); "
             "assert ray.cluster_resources().get('CPU', 0) > 0"]
    env = {**os.environ, **QUIET_ENV, "RAY_ADDRESS": stack.ray_address}
    _wait(lambda: subprocess.run(probe, env=env, capture_output=True).returncode == 0, 120,
          "the Ray head", stack.dir / "ray.log", head)


def _enter(netns_pid: int) -> list[str]:
    if os.geteuid() == 0:
        return ["nsenter", f"--net=/proc/{netns_pid}/ns/net"]
    return ["nsenter", "-t", str(netns_pid), "--user", "--net", "--preserve-credentials"]


def namespace_pids(state: State) -> list[int]:
    """Every process in the stack's network namespace (its first process included)."""
    if not state.netns:
        return []
    return _processes(lambda pid: os.readlink(f"/proc/{pid}/ns/net") == state.netns)


def listeners_outside_loopback(stack: Stack) -> list[str]:
    """Sockets the stack's processes listen on, in this namespace, beyond loopback.

    Reads ``/proc/net/tcp*`` of the machine's namespace and matches socket inodes to the
    stack's processes outside its namespace (PostgreSQL, MLflow, the relay). Ray's are
    in the private namespace, which has no interface but loopback.
    """
    state = read_state(stack)
    if state is None:
        return []
    inside = set(namespace_pids(state))
    outside = _processes(lambda pid: pid not in inside and os.getpgid(pid) in state.groups.values())
    inodes: dict[str, int] = {}
    for pid in outside:
        with contextlib.suppress(OSError):  # ended meanwhile
            for fd in os.listdir(f"/proc/{pid}/fd"):
                target = os.readlink(f"/proc/{pid}/fd/{fd}")
                if target.startswith("socket:["):
                    inodes[target[8:-1]] = pid
    found = []
    for table in ("/proc/net/tcp", "/proc/net/tcp6"):
        for line in Path(table).read_text().splitlines()[1:]:
            fields = line.split()
            local, status, inode = fields[1], fields[3], fields[9]
            address = local.split(":")[0]
            # 127.0.0.1, ::1, ::ffff:127.0.0.1
            loopback = address in ("0100007F", "00000000000000000000000001000000",
                                   "0000000000000000FFFF00000100007F")
            if status == "0A" and inode in inodes and not loopback:  # 0A: LISTEN
                found.append(f"pid {inodes[inode]} listens on {local}")
    return found


# ---------------------------------------------------------------- relays


async def _relay(listen: str, target: str) -> asyncio.AbstractServer:
    """Forward every connection made to ``listen`` to ``target`` (``tcp:host:port`` or
    ``unix:path``): how a port crosses into the network namespace."""

    async def open_target():
        if target.startswith("unix:"):
            return await asyncio.open_unix_connection(target[5:])
        host, port = target[4:].rsplit(":", 1)
        return await asyncio.open_connection(host, int(port))

    async def pipe(reader, writer):
        try:
            while data := await reader.read(1 << 16):
                writer.write(data)
                await writer.drain()
            if writer.can_write_eof():
                writer.write_eof()
        except (ConnectionError, OSError):
            pass

    async def handle(reader, writer):
        try:
            target_reader, target_writer = await open_target()
        except OSError:
            writer.close()
            return
        await asyncio.gather(pipe(reader, target_writer), pipe(target_reader, writer))
        for w in (writer, target_writer):
            w.close()

    if listen.startswith("unix:"):
        Path(listen[5:]).unlink(missing_ok=True)
        return await asyncio.start_unix_server(handle, listen[5:])
    host, port = listen[4:].rsplit(":", 1)
    return await asyncio.start_server(handle, host, int(port))


def _serve(pairs: list[tuple[str, str]], ready: Path | None = None) -> None:
    async def main():
        servers = [await _relay(listen, target) for listen, target in pairs]
        if ready is not None:
            ready.write_text(str(os.getpid()))
        stop = asyncio.Event()
        for sig in (signal.SIGTERM, signal.SIGINT):
            asyncio.get_running_loop().add_signal_handler(sig, stop.set)
        await stop.wait()
        for server in servers:
            server.close()

    asyncio.run(main())


def _loopback_up() -> None:
    """Bring up ``lo`` in a new network namespace (it starts down), without iproute2."""
    siocgifflags, siocsifflags, iff_up = 0x8913, 0x8914, 0x1
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
        request = struct.pack("16sH22x", b"lo", 0)
        flags = struct.unpack("16sH22x", fcntl.ioctl(s, siocgifflags, request))[1]
        fcntl.ioctl(s, siocsifflags, struct.pack("16sH22x", b"lo", flags | iff_up))


# ---------------------------------------------------------------- processes


def _spawn(name: str, stack: Stack, command: list[str], env: dict | None = None,
           cwd: Path | None = None) -> subprocess.Popen:
    """Start ``command`` in a process group of its own, logging to ``<name>.log``."""
    log = open(stack.dir / f"{name}.log", "ab")
    return subprocess.Popen(command, stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
                            start_new_session=True, cwd=cwd or stack.dir,
                            env={**os.environ, **QUIET_ENV, "TSSWEEP_ROOT": str(ROOT), **(env or {})})


def _wait(ready, seconds: float, what: str, log: Path, process: subprocess.Popen | None = None) -> None:
    deadline = time.monotonic() + seconds
    while not ready():
        if process is not None and process.poll() is not None or time.monotonic() > deadline:
            tail = log.read_text(errors="replace")[-3000:] if log.exists() else ""
            raise StackError(f"{what} did not start (see {log}):\n{tail}")
        time.sleep(0.3)


def _http_ok(url: str) -> bool:
    try:
        urllib.request.urlopen(url, timeout=2).close()
        return True
    except OSError:
        return False


def _check_port_free(port: int, variable: str) -> None:
    with socket.socket() as probe:
        if probe.connect_ex(("127.0.0.1", port)) == 0:
            raise StackError(f"Port {port} on 127.0.0.1 is taken by another program: stop it, or "
                             f"choose another port with {variable}=<port>.")


def alive(pid: int) -> bool:
    if pid <= 0:
        return False
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    try:  # a zombie is gone for our purposes
        return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0] != "Z"
    except OSError:
        return False


def _signal(pid: int, sig: int) -> None:
    try:
        os.kill(pid, sig)
    except (ProcessLookupError, PermissionError):
        pass


def group_alive(pgid: int) -> bool:
    return any(alive(pid) for pid in _group_members(pgid))


def _group_members(pgid: int) -> list[int]:
    return _processes(lambda pid: os.getpgid(pid) == pgid)


def _processes(matches: Callable[[int], bool]) -> list[int]:
    """The running processes for which ``matches(pid)`` holds; one that ends while it is
    looked at (``OSError``) is left out."""
    found = []
    for pid in map(int, filter(str.isdigit, os.listdir("/proc"))):
        with contextlib.suppress(OSError):
            if matches(pid):
                found.append(pid)
    return found


def _env_int(name: str, default: int) -> int:
    return int(os.environ.get(name) or default)


def _kill_group(pgid: int) -> None:
    for sig, grace in ((signal.SIGTERM, 15), (signal.SIGKILL, 5)):
        try:
            os.killpg(pgid, sig)
        except (ProcessLookupError, PermissionError):
            return
        _wait_gone(_group_members(pgid), grace)


def _wait_gone(pids: list[int], seconds: float) -> None:
    deadline = time.monotonic() + seconds
    while any(alive(pid) for pid in pids) and time.monotonic() < deadline:
        time.sleep(0.2)


def read_state(stack: Stack) -> State | None:
    try:
        return State(**json.loads((stack.dir / _STATE).read_text()))
    except FileNotFoundError:
        return None


def _write_state(stack: Stack, state: State) -> None:
    with tempfile.NamedTemporaryFile("w", dir=stack.dir, delete=False) as tmp:
        json.dump(asdict(state), tmp, indent=2)
    os.replace(tmp.name, stack.dir / _STATE)


# ---------------------------------------------------------------- command line


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m tssweep.stack", description=__doc__.split("\n")[0])
    commands = parser.add_subparsers(dest="command", required=True)
    commands.add_parser("up", help="start PostgreSQL, the MLflow server and the Ray head")
    commands.add_parser("down", help="stop what `up` started, and nothing else")
    commands.add_parser("status", help="what runs, and any listener beyond loopback")
    run = commands.add_parser("exec", help="run a command inside the stack's network namespace")
    run.add_argument("cmd", nargs=argparse.REMAINDER)
    relay = commands.add_parser("relay")  # internal: one port relay
    relay.add_argument("listen")
    relay.add_argument("target")
    namespace = commands.add_parser("namespace")  # internal: the namespace's first process
    namespace.add_argument("ready", type=Path)
    namespace.add_argument("relays", nargs="*")
    args = parser.parse_args(argv)
    stack = Stack()
    try:
        if args.command == "up":
            up(stack)
        elif args.command == "down":
            return 1 if down(stack) else 0
        elif args.command == "status":
            state = read_state(stack)
            running = state is not None and alive(state.netns_pid)
            print(f"{stack.dir}: {'up' if running else 'down'}")
            for line in listeners_outside_loopback(stack) if running else []:
                print("  beyond loopback:", line)
        elif args.command == "exec":
            command = args.cmd[1:] if args.cmd[:1] == ["--"] else args.cmd
            exec_inside(stack, command or [os.environ.get("SHELL", "/bin/sh")])
        elif args.command == "relay":
            _serve([(args.listen, args.target)])
        elif args.command == "namespace":
            _loopback_up()
            _serve([tuple(pair.split("=", 1)) for pair in args.relays], ready=args.ready)
    except StackError as err:
        print(err, file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
