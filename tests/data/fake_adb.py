"""A stand-in `adb` for tests: no phone is attached to CI machines.

Behaviour comes from environment variables:
  FAKE_ADB_DEVICES   space-separated serials in state 'device'
  FAKE_ADB_OUTPUT    file whose text `benchmark_model` "prints"
  FAKE_ADB_BINARY    path where benchmark_model exists on the device ('' for none)
  FAKE_ADB_LOG       file to which every invocation is appended (one line each)
"""
import os
import sys

args = sys.argv[1:]
with open(os.environ["FAKE_ADB_LOG"], "a") as log:
  log.write(" ".join(args) + "\n")
devices = os.environ.get("FAKE_ADB_DEVICES", "").split()
if args == ["devices"]:
  print("List of devices attached")
  for d in devices:
    print(f"{d}\tdevice")
  sys.exit(0)
if args[:1] == ["-s"]:
  if args[1] not in devices:
    print(f"adb: device '{args[1]}' not found", file=sys.stderr)
    sys.exit(1)
  args = args[2:]
if args[:1] == ["push"]:
  print(f"{args[1]}: 1 file pushed.")
  sys.exit(0)
if args[:1] == ["shell"]:
  cmd = args[1]
  binary = os.environ.get("FAKE_ADB_BINARY", "")
  if cmd.startswith("ls "):
    path = cmd[3:]
    if binary and path == binary:
      print(path)
    else:
      print(f"ls: {path}: No such file or directory")
    sys.exit(0)
  if cmd.startswith("getprop"):
    print({"ro.product.model": "Pixel 1", "ro.product.cpu.abi": "arm64-v8a"}.get(cmd.split()[1], ""))
    sys.exit(0)
  if cmd.startswith("chmod"):
    sys.exit(0)
  if "benchmark_model" in cmd:
    print(open(os.environ["FAKE_ADB_OUTPUT"]).read())
    sys.exit(0)
print(f"fake adb: unsupported {args}", file=sys.stderr)
sys.exit(1)
