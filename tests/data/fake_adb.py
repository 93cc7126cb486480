"""A stand-in `adb` for tests: no phone is attached to CI machines.

Behaviour comes from environment variables:
  FAKE_ADB_DEVICES   space-separated serials in state 'device'
  FAKE_ADB_OUTPUT    file whose text `benchmark_model` "prints"
  FAKE_ADB_BINARY    path where benchmark_model exists on the device ('' for none)
  FAKE_ADB_LOG       file to which every invocation is appended (one line each), and
                     each command a `shell` line would run (`exec: ["argv", ...]`)
"""
import json
import os
import shlex
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
  # Split the command line as the device's sh would: unquoted `;`, `&&`, `|` separate
  # commands. Every command "run" is logged as `exec: argv`, so a test sees an injection.
  lexer = shlex.shlex(args[1], posix=True, punctuation_chars=True)
  lexer.whitespace_split = True
  commands, current = [], []
  for token in lexer:
    if token in (";", "&&", "||", "|", "&"):
      commands.append(current)
      current = []
    else:
      current.append(token)
  commands.append(current)
  with open(os.environ["FAKE_ADB_LOG"], "a") as log:
    for argv in filter(None, commands):
      log.write("exec: " + json.dumps(argv) + "\n")
  argv = commands[0]
  binary = os.environ.get("FAKE_ADB_BINARY", "")
  if argv[:1] == ["ls"]:
    path = argv[1]
    if binary and path == binary:
      print(path)
    else:
      print(f"ls: {path}: No such file or directory")
    sys.exit(0)
  if argv[:1] == ["getprop"]:
    print({"ro.product.model": "Pixel 1", "ro.product.cpu.abi": "arm64-v8a"}.get(argv[1], ""))
    sys.exit(0)
  if argv[:1] == ["chmod"]:
    sys.exit(0)
  if any("benchmark_model" in a for a in argv[:3]):
    print(open(os.environ["FAKE_ADB_OUTPUT"]).read())
    sys.exit(0)
print(f"fake adb: unsupported {args}", file=sys.stderr)
sys.exit(1)
