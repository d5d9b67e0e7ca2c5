#!/usr/bin/env python3
"""Runs docs/api.md's worked examples against a real hub, as an app would.

A client that shares no code with vigilctl: Python's grpcio, with stubs
that protoc generates from proto/ into a temporary directory (nothing
generated is kept). Two parts:

1. Reflection, as grpcurl explores a server, speaking only
   grpc.reflection.v1alpha (compiled here from its .proto, below): list the
   services, fetch the file that defines vigil.v1.AlarmService and its
   imports, and call AlarmService.GetStatus with messages built from the
   reflected descriptors alone.
2. Every ```python api-example block of docs/api.md, in order, in one
   Python namespace (a block may use what an earlier one defined), with
   these variables set:

     hub       the hub's address, "host:port"
     ca_pem    the hub's CA certificate (PEM bytes), as pairing gave it
     cert_pem  a paired admin client's certificate (PEM bytes)
     key_pem   its private key (PEM bytes)

The hub and credentials come from the environment:

  VIGIL_HUB    host:port          (else the file `hub` in VIGIL_CREDENTIALS)
  VIGIL_CA     path of ca.pem     (else VIGIL_CREDENTIALS/ca.pem)
  VIGIL_CERT   path of client.pem (else VIGIL_CREDENTIALS/client.pem)
  VIGIL_KEY    path of client.key (else VIGIL_CREDENTIALS/client.key)

The examples expect a fresh hub as tests/tests/api_examples.rs (which
runs this script) starts it: the test house, alice with PIN 2468, the
camera `porch` and vigil-reportd, the front door opened and closed once
(a second run against the same hub fails: the client `example-tablet` is
paired already). Exits 0 when everything passed, 1 naming the first block
or check that failed, 2 when Python lacks a package or the environment is
incomplete.

Usage: run_examples.py [--doc docs/api.md] [--proto proto] [--list]
"""

import argparse
import os
import re
import signal
import subprocess
import sys
import tempfile
import time
import traceback

REPO = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

# How long one block or check may take.
BLOCK_LIMIT_S = 120

# grpc.reflection.v1alpha as grpc publishes it
# (src/proto/grpc/reflection/v1alpha/reflection.proto), without comments:
# grpcio-reflection, which has it, is not packaged in Debian 12.
REFLECTION_V1ALPHA = """\
syntax = "proto3";
package grpc.reflection.v1alpha;

service ServerReflection {
  rpc ServerReflectionInfo(stream ServerReflectionRequest)
      returns (stream ServerReflectionResponse);
}

message ServerReflectionRequest {
  string host = 1;
  oneof message_request {
    string file_by_filename = 3;
    string file_containing_symbol = 4;
    ExtensionRequest file_containing_extension = 5;
    string all_extension_numbers_of_type = 6;
    string list_services = 7;
  }
}

message ExtensionRequest {
  string containing_type = 1;
  int32 extension_number = 2;
}

message ServerReflectionResponse {
  string valid_host = 1;
  ServerReflectionRequest original_request = 2;
  oneof message_response {
    FileDescriptorResponse file_descriptor_response = 4;
    ExtensionNumberResponse all_extension_numbers_response = 5;
    ListServiceResponse list_services_response = 6;
    ErrorResponse error_response = 7;
  }
}

message FileDescriptorResponse {
  repeated bytes file_descriptor_proto = 1;
}

message ExtensionNumberResponse {
  string base_type_name = 1;
  repeated int32 extension_number = 2;
}

message ListServiceResponse {
  repeated ServiceResponse service = 1;
}

message ServiceResponse {
  string name = 1;
}

message ErrorResponse {
  int32 error_code = 1;
  string error_message = 2;
}
"""

MISSING_PACKAGES = (
    "run_examples.py needs Python's grpcio, protobuf and cryptography "
    "(Debian: python3-grpcio python3-protobuf python3-cryptography, "
    "which scripts/deps installs): {error}. This is {python}; with another python3 first "
    "on the PATH (pyenv, a venv), run it with /usr/bin/python3."
)


class Failure(Exception):
    """A check that failed, with what to say."""


class TimeLimit(Exception):
    pass


def fail(message):
    raise Failure(message)


def die(message, code):
    print(f"run_examples.py: {message}", file=sys.stderr)
    sys.exit(code)


def read_env():
    """(hub, ca_pem, cert_pem, key_pem) from the environment."""
    creds = os.environ.get("VIGIL_CREDENTIALS", "")

    def path(var, name):
        value = os.environ.get(var) or (os.path.join(creds, name) if creds else "")
        if not value:
            die(f"set {var} (or VIGIL_CREDENTIALS, a directory with {name})", 2)
        return value

    hub = os.environ.get("VIGIL_HUB", "")
    if not hub:
        with open(path("VIGIL_HUB", "hub"), encoding="utf-8") as f:
            hub = f.read().strip()
    files = []
    for var, name in [("VIGIL_CA", "ca.pem"), ("VIGIL_CERT", "client.pem"), ("VIGIL_KEY", "client.key")]:
        p = path(var, name)
        try:
            with open(p, "rb") as f:
                files.append(f.read())
        except OSError as e:
            die(f"{var}: cannot read {p}: {e}", 2)
    return (hub, *files)


def stub_compiler():
    """The command that compiles .proto files into Python messages and gRPC
    stubs: Debian's protoc with grpc_python_plugin, else grpcio-tools'
    grpc_tools.protoc (pip's; Debian's python3-grpc-tools is 1.14, whose
    protoc 3.6 predates proto3 `optional`)."""
    import shutil

    protoc = shutil.which("protoc")
    plugin = shutil.which("grpc_python_plugin")
    if protoc and plugin:
        return [protoc, f"--plugin=protoc-gen-grpc_python={plugin}"], []
    try:
        import grpc_tools
        import grpc_tools.protoc
    except ImportError:
        die("no compiler for the stubs: install Debian's protobuf-compiler and "
            "protobuf-compiler-grpc (scripts/deps does), or pip's grpcio-tools", 2)
    return [sys.executable, "-m", "grpc_tools.protoc"], [
        f"-I{os.path.join(os.path.dirname(grpc_tools.__file__), '_proto')}"]


def generate_stubs(proto_dir, out_dir):
    """Python modules for proto/vigil/v1/*.proto and the v1alpha reflection
    proto, in out_dir (which goes on sys.path)."""
    compiler, includes = stub_compiler()
    reflection_dir = os.path.join(out_dir, "src")
    # A path of its own: `grpc` is grpcio's package. The wire names come
    # from the proto package, grpc.reflection.v1alpha.
    reflection_proto = os.path.join("v1alpha_reflection", "reflection.proto")
    os.makedirs(os.path.join(reflection_dir, os.path.dirname(reflection_proto)))
    with open(os.path.join(reflection_dir, reflection_proto), "w", encoding="utf-8") as f:
        f.write(REFLECTION_V1ALPHA)

    vigil = sorted(
        os.path.join("vigil", "v1", name)
        for name in os.listdir(os.path.join(proto_dir, "vigil", "v1"))
        if name.endswith(".proto")
    )
    if not vigil:
        die(f"no .proto files in {proto_dir}/vigil/v1", 2)
    for include, files in [(proto_dir, vigil), (reflection_dir, [reflection_proto])]:
        result = subprocess.run(
            [*compiler, f"-I{include}", *includes,
             f"--python_out={out_dir}", f"--grpc_python_out={out_dir}", *files],
            capture_output=True, text=True, check=False,
        )
        if result.returncode != 0:
            die(f"{' '.join(compiler)} failed on {files} (protoc before 3.15 does not know "
                f"proto3 `optional`: install protobuf-compiler-grpc):\n{result.stderr}", 1)
    sys.path.insert(0, out_dir)
    return vigil


def with_time_limit(what, fn):
    """Runs fn(), failing after BLOCK_LIMIT_S (the examples' calls have
    deadlines of their own; this catches a block that waits in Python)."""

    def expired(_signum, _frame):
        raise TimeLimit(f"{what} took more than {BLOCK_LIMIT_S} s")

    old = signal.signal(signal.SIGALRM, expired)
    signal.alarm(BLOCK_LIMIT_S)
    try:
        return fn()
    finally:
        signal.alarm(0)
        signal.signal(signal.SIGALRM, old)


def channels(hub, ca_pem, cert_pem, key_pem):
    import grpc

    options = [("grpc.ssl_target_name_override", "vigil-hub")]
    anonymous = grpc.secure_channel(hub, grpc.ssl_channel_credentials(root_certificates=ca_pem), options)
    paired = grpc.secure_channel(
        hub,
        grpc.ssl_channel_credentials(root_certificates=ca_pem, private_key=key_pem, certificate_chain=cert_pem),
        options,
    )
    return anonymous, paired


def check_reflection_v1alpha(hub, ca_pem, cert_pem, key_pem):
    """grpcurl's exploration, over grpc.reflection.v1alpha only."""
    from google.protobuf import descriptor_pb2, descriptor_pool, message_factory

    # Compiled from REFLECTION_V1ALPHA (see generate_stubs).
    from v1alpha_reflection import reflection_pb2 as rpb
    from v1alpha_reflection import reflection_pb2_grpc as rgrpc

    anonymous, paired = channels(hub, ca_pem, cert_pem, key_pem)
    # Reflection needs no client certificate (alarm.proto's header).
    stub = rgrpc.ServerReflectionStub(anonymous)

    def ask(request):
        (response,) = list(stub.ServerReflectionInfo(iter([request]), timeout=10))
        if response.HasField("error_response"):
            fail(f"reflection v1alpha answered {request} with an error: {response.error_response}")
        return response

    listed = ask(rpb.ServerReflectionRequest(list_services=""))
    services = sorted(s.name for s in listed.list_services_response.service)
    want = ["vigil.v1.AdminService", "vigil.v1.AlarmService", "vigil.v1.CameraService", "vigil.v1.ReportService"]
    missing = [s for s in want if s not in services]
    if missing:
        fail(f"reflection v1alpha lists {services}; missing {missing}")
    print(f"reflection v1alpha: {len(services)} services: {', '.join(services)}")

    # The file that defines AlarmService, and every file it imports.
    pool = descriptor_pool.DescriptorPool()
    added = set()

    def fetch(request):
        response = ask(request)
        files = [descriptor_pb2.FileDescriptorProto.FromString(raw)
                 for raw in response.file_descriptor_response.file_descriptor_proto]
        if not files:
            fail(f"reflection v1alpha sent no file for {request}")
        return files

    def add(file, known):
        if file.name in added:
            return
        for dep in file.dependency:
            if dep in added:
                continue
            if dep not in known:
                match = [f for f in fetch(rpb.ServerReflectionRequest(file_by_filename=dep)) if f.name == dep]
                if not match:
                    fail(f"reflection v1alpha: file_by_filename {dep!r} sent other files")
                known[dep] = match[0]
            add(known[dep], known)
        pool.Add(file)
        added.add(file.name)

    def load(request):
        files = fetch(request)
        known = {f.name: f for f in files}
        for f in files:
            add(f, known)
        return files

    files = load(rpb.ServerReflectionRequest(file_containing_symbol="vigil.v1.AlarmService"))
    if files[0].name != "vigil/v1/alarm.proto":
        fail(f"the file containing vigil.v1.AlarmService is {files[0].name}, not vigil/v1/alarm.proto")
    service = pool.FindServiceByName("vigil.v1.AlarmService")
    methods = [m.name for m in service.methods]
    for name in ["GetStatus", "Arm", "Disarm", "WatchEvents"]:
        if name not in methods:
            fail(f"the reflected AlarmService has no {name}: {methods}")
    # Every vigil service's file resolves too.
    for name in want[:1] + want[2:]:
        load(rpb.ServerReflectionRequest(file_containing_symbol=name))
        pool.FindServiceByName(name)
    print(f"reflection v1alpha: files {sorted(added)}")

    # A call made from the reflected descriptors alone, as grpcurl makes one.
    method = service.methods_by_name["GetStatus"]

    def message_class(descriptor):
        get = getattr(message_factory, "GetMessageClass", None)
        if get is not None:
            return get(descriptor)
        return message_factory.MessageFactory(pool).GetPrototype(descriptor)

    request_class = message_class(method.input_type)
    response_class = message_class(method.output_type)
    call = paired.unary_unary(
        f"/{service.full_name}/{method.name}",
        request_serializer=request_class.SerializeToString,
        response_deserializer=response_class.FromString,
    )
    answer = call(request_class(), timeout=10)
    hub_id = answer.status.hub_id
    if not re.fullmatch(r"[0-9a-f]{32}", hub_id):
        fail(f"GetStatus through reflected descriptors: hub_id {hub_id!r}")
    mode = answer.status.DESCRIPTOR.fields_by_name["mode"].enum_type.values_by_number[answer.status.mode]
    print(f"reflection v1alpha: GetStatus from reflected descriptors: hub {hub_id}, {mode.name}")
    anonymous.close()
    paired.close()


def extract_blocks(doc_path):
    """[(number, line, heading, code)] of the doc's ```python api-example
    blocks; line is the block's first code line (1-based)."""
    blocks = []
    heading = ""
    inside = None
    with open(doc_path, encoding="utf-8") as f:
        lines = f.read().split("\n")
    for i, line in enumerate(lines, start=1):
        if inside is None:
            if line.startswith("#"):
                heading = line.lstrip("#").strip()
            fence = re.fullmatch(r"(`{3,})\s*python\s+api-example\s*", line)
            if fence:
                inside = (fence.group(1), i + 1, heading, [])
            elif re.fullmatch(r"`{3,}\s*python\s+api-example\b.*", line):
                die(f"{doc_path}:{i}: an api-example fence with more after it: {line!r}", 1)
        else:
            ticks, start, block_heading, code = inside
            if line.strip() == ticks:
                blocks.append((len(blocks) + 1, start, block_heading, "\n".join(code) + "\n"))
                inside = None
            else:
                code.append(line)
    if inside is not None:
        die(f"{doc_path}:{inside[1] - 1}: an api-example block that is never closed", 1)
    return blocks


def describe_rpc_error(error):
    import grpc

    if isinstance(error, grpc.RpcError) and hasattr(error, "code"):
        return f"gRPC {error.code().name}: {error.details()}"
    return None


def run_blocks(blocks, doc_rel, namespace, keep_going):
    failed = []
    for number, line, heading, code in blocks:
        label = f"api-example block {number} ({doc_rel} line {line}, section \"{heading}\")"
        # Padded so that a traceback's line numbers are the doc's.
        compiled = compile("\n" * (line - 1) + code, doc_rel, "exec")
        started = time.monotonic()
        try:
            with_time_limit(label, lambda: exec(compiled, namespace))
        except BaseException as e:
            if isinstance(e, KeyboardInterrupt):
                raise
            rpc = describe_rpc_error(e)
            print(f"FAIL {label}", file=sys.stderr)
            if rpc:
                print(f"  the hub answered {rpc}", file=sys.stderr)
            traceback.print_exc(file=sys.stderr)
            failed.append(label)
            if not keep_going:
                break
            continue
        print(f"ok   {label} ({time.monotonic() - started:.1f} s)")
    return failed


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--doc", default=os.path.join(REPO, "docs", "api.md"))
    parser.add_argument("--proto", default=os.path.join(REPO, "proto"))
    parser.add_argument("--list", action="store_true", help="list the blocks and exit")
    parser.add_argument("--keep-going", action="store_true",
                        help="run the blocks after a failing one (they share a namespace, so "
                             "later failures may follow from the first)")
    args = parser.parse_args()

    doc_rel = os.path.relpath(args.doc, REPO) if args.doc.startswith(REPO) else args.doc
    blocks = extract_blocks(args.doc)
    if not blocks:
        die(f"{doc_rel} has no ```python api-example blocks", 1)
    if args.list:
        for number, line, heading, code in blocks:
            print(f"block {number}: line {line}, \"{heading}\", {code.count(chr(10))} lines")
        return 0

    try:
        import cryptography
        import google.protobuf
        import grpc
    except ImportError as e:
        die(MISSING_PACKAGES.format(error=e, python=sys.executable), 2)

    hub, ca_pem, cert_pem, key_pem = read_env()
    failed = []
    with tempfile.TemporaryDirectory(prefix="vigil-api-stubs-") as stubs:
        generate_stubs(args.proto, stubs)
        print(f"stubs from {args.proto} in {stubs}; hub {hub}")

        label = "the v1alpha reflection check"
        try:
            with_time_limit(label, lambda: check_reflection_v1alpha(hub, ca_pem, cert_pem, key_pem))
            print(f"ok   {label}")
        except BaseException as e:
            if isinstance(e, KeyboardInterrupt):
                raise
            rpc = describe_rpc_error(e)
            print(f"FAIL {label}" + (f": the hub answered {rpc}" if rpc else ""), file=sys.stderr)
            if not isinstance(e, Failure) or args.keep_going:
                traceback.print_exc(file=sys.stderr)
            else:
                print(f"  {e}", file=sys.stderr)
            failed.append(label)

        namespace = {
            "__name__": "api_examples",
            "hub": hub,
            "ca_pem": ca_pem,
            "cert_pem": cert_pem,
            "key_pem": key_pem,
        }
        failed += run_blocks(blocks, doc_rel, namespace, args.keep_going)
        # Close what the blocks left open before the stubs go.
        for value in list(namespace.values()):
            close = getattr(value, "close", None)
            if close is not None and type(value).__name__ == "Channel":
                close()

    if failed:
        print(f"run_examples.py: {len(failed)} failed: the first is {failed[0]}", file=sys.stderr)
        return 1
    print(f"run_examples.py: the reflection check and all {len(blocks)} api-example blocks of "
          f"{doc_rel} passed")
    return 0


if __name__ == "__main__":
    sys.exit(main())
