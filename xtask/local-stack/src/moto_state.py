"""moto_server whose state survives a restart: the local stack's AWS API.

Usage: python3 moto_state.py STATE STATUS HOST PORT

moto keeps its state in memory, in its backends (one `BackendDict` per service, holding
the objects of each account and region). This entry point starts the very server
`moto_server` starts (moto's own WSGI app and request handler) with two additions, and
patches nothing inside moto:

- at start, it loads STATE (a pickle of every backend in use) into the backends, and
  writes to STATUS (JSON) what it restored or why it could not;
- after each request that changes state, before the response is sent, it pickles the
  backends to STATE (written whole, then renamed): what a client saw done is on disk,
  so a `kill -9` loses nothing.

The objects come back as they were, generated ids and key material included (a KMS
key's private key, an assumed role's access key, a stack's change sets). Pickle needs
three helps, all in `Pickler.reducer_override`: locks are made anew, private keys go as
PKCS#8 DER, and moto's own dict classes (whose constructors take arguments, or which
store items their own way) and defaultdicts whose factory is a lambda are made bare and
filled as stored, the lambda replaced by a factory that copies an empty value of the
kind it made. A snapshot is tied to the moto release that
made it.
"""

import collections
import contextlib
import copy
import importlib
import io
import json
import os
import pickle
import signal
import sys
import tempfile
import threading
import time
import traceback

import moto
from moto.core.base_backend import BackendDict
from moto.moto_server.werkzeug_app import (
    DomainDispatcherApplication,
    MotoRequestHandler,
    create_backend_app,
)
from werkzeug.serving import run_simple

from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import dsa, ec, ed448, ed25519, rsa

PRIVATE_KEYS = (
    ec.EllipticCurvePrivateKey,
    rsa.RSAPrivateKey,
    dsa.DSAPrivateKey,
    ed25519.Ed25519PrivateKey,
    ed448.Ed448PrivateKey,
)
LOCKS = {type(threading.Lock()): threading.Lock, type(threading.RLock()): threading.RLock}
READS = ("Describe", "List", "Get", "BatchGet", "BatchCheck")


class Factory:
    """A picklable default factory: a deep copy of the empty value a lambda made."""

    def __init__(self, empty):
        self.empty = empty

    def __call__(self):
        return copy.deepcopy(self.empty)


def new_dict(cls, factory):
    made = cls.__new__(cls)
    if factory is not None:
        made.default_factory = factory
    return made


def set_dict_state(made, state):
    attributes, items = state
    if attributes:
        made.__dict__.update(attributes)
    dict.update(made, items)


def load_private_key(der):
    return serialization.load_der_private_key(der, None)


class Pickler(pickle.Pickler):
    def reducer_override(self, obj):
        if isinstance(obj, PRIVATE_KEYS):
            der = obj.private_bytes(
                serialization.Encoding.DER,
                serialization.PrivateFormat.PKCS8,
                serialization.NoEncryption(),
            )
            return (load_private_key, (der,))
        make = LOCKS.get(type(obj))
        if make is not None:
            return (make, ())
        if isinstance(obj, dict):
            factory = getattr(obj, "default_factory", None)
            is_lambda = getattr(factory, "__name__", "") == "<lambda>"
            if is_lambda or type(obj).__module__.startswith("moto."):
                if is_lambda:
                    factory = Factory(factory())
                # moto's dicts may take arguments to be made and keep their items their
                # own way (S3's versioned keys): made bare, their items set as stored.
                state = (getattr(obj, "__dict__", None), list(dict.items(obj)))
                return (new_dict, (type(obj), factory), state, None, None, set_dict_state)
        return NotImplemented


def key_of(backends):
    return f"{backends.backend.__module__}:{backends.backend.__qualname__}:{backends.service_name}"


def snapshot():
    """Every backend in use, by key, as one pickle (objects refer across services)."""
    state = {
        "moto": moto.__version__,
        "backends": {key_of(b): dict(b) for b in list(BackendDict._instances) if len(b)},
    }
    out = io.BytesIO()
    Pickler(out, protocol=pickle.HIGHEST_PROTOCOL).dump(state)
    return out.getvalue()


def find_backends(key):
    module, qualname, service = key.split(":")
    importlib.import_module(module)
    for name, loaded in list(sys.modules.items()):
        if not name.startswith("moto") or loaded is None:
            continue
        for value in list(vars(loaded).values()):
            if isinstance(value, BackendDict) and key_of(value) == key:
                return value
    raise LookupError(f"no backends {key} in this moto")


def restore(path):
    """Loads the snapshot at `path` into moto's backends; returns what to put in STATUS."""
    if not os.path.exists(path):
        return {"restored": False, "reason": "no saved state"}
    started = time.monotonic()
    try:
        with open(path, "rb") as file:
            data = file.read()
        state = pickle.loads(data)
        if state["moto"] != moto.__version__:
            raise ValueError(f"it was saved by moto {state['moto']}, this is moto {moto.__version__}")
        services = {}
        for key, accounts in state["backends"].items():
            backends = find_backends(key)
            backends.clear()
            backends.update(accounts)
            if backends not in BackendDict._instances:
                BackendDict._instances.append(backends)
            services[backends.service_name] = sorted(accounts)
    except Exception as err:  # noqa: BLE001 (any failure: the state is not restored)
        traceback.print_exc()
        aside = path + ".unrestorable"
        os.replace(path, aside)
        return {"restored": False, "error": f"{type(err).__name__}: {err}", "kept_at": aside}
    return {
        "restored": True,
        "services": services,
        "bytes": len(data),
        "seconds": round(time.monotonic() - started, 3),
    }


def write_whole(path, data):
    """Writes `data` (bytes) to `path` whole or not at all: into a new file of this writer's
    own beside it (mkstemp's unique name), then renamed over `path`. Writers side by side
    (a request's save and the check thread both write STATUS) never clobber each other's."""
    directory, name = os.path.split(path)
    fd, partial = tempfile.mkstemp(dir=directory or ".", prefix=name + ".", suffix=".partial")
    try:
        with os.fdopen(fd, "wb") as file:
            file.write(data)
        os.replace(partial, path)
    except BaseException:
        with contextlib.suppress(OSError):
            os.unlink(partial)
        raise


def write_json(path, value):
    write_whole(path, json.dumps(value).encode())


def changes_state(environ, body):
    """Does the request change state? Reads (`Describe*`, `List*`, `Get*` actions, GET
    and HEAD) do not; anything not known to be a read does."""
    method = environ.get("REQUEST_METHOD", "GET")
    target = environ.get("HTTP_X_AMZ_TARGET")
    if target:
        return not target.rsplit(".", 1)[-1].startswith(READS)
    for text in (body, environ.get("QUERY_STRING", "").encode()):
        for pair in text.split(b"&"):
            if pair.startswith(b"Action="):
                return not pair[len(b"Action=") :].decode(errors="replace").startswith(READS)
    return method not in ("GET", "HEAD", "OPTIONS")


class Saving:
    """moto's WSGI app, saving the backends after each request that changes state."""

    def __init__(self, app, path, status):
        self.app = app
        self.path = path
        self.status = status
        self.lock = threading.Lock()
        self.saves = 0
        self.check = Check(self)

    def __call__(self, environ, start_response):
        body = b""
        if environ.get("CONTENT_TYPE", "").startswith("application/x-www-form-urlencoded"):
            length = int(environ.get("CONTENT_LENGTH") or 0)
            body = environ["wsgi.input"].read(length)
            environ["wsgi.input"] = io.BytesIO(body)
        path = environ.get("PATH_INFO", "")
        # moto's recorder replays by calling this server: it must not wait for the lock.
        if path.startswith("/moto-api/recorder/") or (path.startswith("/moto-api/") and environ.get("REQUEST_METHOD") == "GET"):
            return self.app(environ, start_response)
        if not changes_state(environ, body):
            return self.app(environ, start_response)
        # One change at a time, each saved before its answer leaves.
        with self.lock:
            result = self.app(environ, start_response)
            try:
                answer = b"".join(result)
            finally:
                if hasattr(result, "close"):
                    result.close()
            self.save()
            return [answer]

    def save(self):
        for attempt in range(3):
            try:
                data = snapshot()
                write_whole(self.path, data)
                self.saves += 1
                if self.status.pop("save_error", None) is not None:
                    self.write_status()
                self.check.put(data)
                return
            except RuntimeError:
                # A read that ran beside this save grew a dict being pickled: try again.
                if attempt == 2:
                    self.failed()
            except Exception:  # noqa: BLE001
                self.failed()
                return

    def failed(self, why=None):
        traceback.print_exc()
        self.status["save_error"] = why or traceback.format_exc().strip().splitlines()[-1]
        self.write_status()

    def write_status(self):
        write_json(self.status["path"], {k: v for k, v in self.status.items() if k != "path"})


class Check(threading.Thread):
    """Loads the latest snapshot once more, off the requests' path, so that a state that
    would not come back is said now (in STATUS, which `local status` shows), not at the
    next start."""

    def __init__(self, saving):
        super().__init__(daemon=True)
        self.saving = saving
        self.latest = None
        self.ready = threading.Condition()
        self.start()

    def put(self, data):
        with self.ready:
            self.latest = data
            self.ready.notify()

    def run(self):
        while True:
            with self.ready:
                while self.latest is None:
                    self.ready.wait()
                # A burst of changes (a deploy) is checked once, after a quiet second.
                while self.ready.wait(timeout=1.0):
                    pass
                data, self.latest = self.latest, None
            try:
                pickle.loads(data)
            except Exception as err:  # noqa: BLE001
                self.saving.failed(f"the saved state would not load: {type(err).__name__}: {err}")


def main():
    state, status_path, host, port = sys.argv[1:5]
    os.environ.setdefault("MOTO_PORT", port)
    status = restore(state)
    status["moto"] = moto.__version__
    write_json(status_path, status)
    print(f"AWS API state: {json.dumps(status)}", flush=True)
    status["path"] = status_path
    app = DomainDispatcherApplication(create_backend_app)
    app.debug = True
    for sig in (signal.SIGINT, signal.SIGTERM):
        signal.signal(sig, lambda *_: sys.exit(0))
    run_simple(
        host,
        int(port),
        Saving(app, state, status),
        threaded=True,
        request_handler=MotoRequestHandler,
    )


if __name__ == "__main__":
    main()
