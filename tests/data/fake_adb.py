"""A stand-in `adb` for tests: no phone is attached to CI machines.

Behaviour comes from environment variables:
  FAKE_ADB_DEVICES   space-separated serials in state 'device'
  FAKE_ADB_OUTPUT    file whose text `benchmark_model` "prints" (a real recorded output)
  FAKE_ADB_BINARY    path where benchmark_model exists on the device ('' for none)
  FAKE_ADB_LOG       file to which every invocation is appended (one line each), and
                     each command a `shell` line would run (`exec: ["argv", ...]`)
  FAKE_ADB_SLEEP_SCALE  benchmark_model sleeps for this fraction of the recorded run's
                     time (timed runs x their mean): devices in parallel take wall time
  FAKE_ADB_DROP      "SERIAL@N+M": after N benchmark runs on SERIAL the device is gone
                     (not listed, its commands fail) for the next M `adb devices` calls
  FAKE_ADB_HEAT      "SERIAL@N*F": once SERIAL has run N benchmarks, its timings are
                     F times the recorded ones (a phone throttling as it heats up); its
                     battery and thermal zone read 10 degrees warmer
  FAKE_ADB_MODELS    "SERIAL=Model name,...": the phone model a serial reports
                     (ro.product.model; default "Pixel 1")
State shared by concurrent invocations (run counts, drops) is kept, under a file lock,
in FAKE_ADB_LOG's folder.
"""
import fcntl
import json
import os
import re
import shlex
import sys
import time

args = sys.argv[1:]
log_path = os.environ["FAKE_ADB_LOG"]
with open(log_path, "a") as log:
  log.write(" ".join(args) + "\n")


class State:
  """{"runs": {serial: n}, "gone": {serial: listings left}} in a locked JSON file."""

  def __enter__(self):
    self.f = open(os.path.join(os.path.dirname(log_path), "fake_adb_state.json"), "a+")
    fcntl.flock(self.f, fcntl.LOCK_EX)
    self.f.seek(0)
    text = self.f.read()
    self.data = json.loads(text) if text else {"runs": {}, "gone": {}}
    return self.data

  def __exit__(self, *exc):
    self.f.seek(0)
    self.f.truncate()
    self.f.write(json.dumps(self.data))
    self.f.flush()
    fcntl.flock(self.f, fcntl.LOCK_UN)
    self.f.close()


def _rule(name):
  m = re.fullmatch(r"(\w+)@(\d+)([+*])([\d.]+)", os.environ.get(name, ""))
  return (m.group(1), int(m.group(2)), float(m.group(4))) if m else None


with State() as state:
  gone = {s for s, left in state["gone"].items() if left > 0}
  if args == ["devices"]:
    for s in gone:
      state["gone"][s] -= 1
devices = [d for d in os.environ.get("FAKE_ADB_DEVICES", "").split() if d not in gone]
if args == ["devices"]:
  print("List of devices attached")
  for d in devices:
    print(f"{d}\tdevice")
  sys.exit(0)
serial = None
if args[:1] == ["-s"]:
  serial = args[1]
  if serial not in devices:
    print(f"adb: device '{serial}' not found", file=sys.stderr)
    sys.exit(1)
  args = args[2:]
if args[:1] == ["push"]:
  print(f"{args[1]}: 1 file pushed.")
  sys.exit(0)
heat = _rule("FAKE_ADB_HEAT")
with State() as state:
  runs = state["runs"].get(serial, 0)
hot = heat is not None and heat[0] == serial and runs >= heat[1]
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
  with open(log_path, "a") as log:
    for argv in filter(None, commands):
      log.write("exec: " + json.dumps(argv) + "\n")
  argv = commands[0]
  binary = os.environ.get("FAKE_ADB_BINARY", "")
  if argv[:2] == ["ls", "/sys/class/thermal"]:  # zone 2's files are unreadable (SELinux)
    print("cooling_device0\nthermal_zone0\nthermal_zone1\nthermal_zone2\nthermal_zone3")
    sys.exit(0)
  if argv[:3] == ["grep", "-H", "."]:  # the zones' type and temp (millidegrees) files
    zones = {0: ("cpu-0-0", 41000 + 10000 * hot), 1: ("gpu", 38500), 3: ("cpu-0-0", 40000)}
    for path in argv[3:]:
      m = re.fullmatch(r"/sys/class/thermal/thermal_zone(\d+)/(type|temp)", path)
      if m and int(m.group(1)) in zones:
        name, temp = zones[int(m.group(1))]
        print(f"{path}:{name if m.group(2) == 'type' else temp}")
      else:
        print(f"grep: {path}: Permission denied", file=sys.stderr)
    sys.exit(0)
  if argv[:1] == ["ls"]:
    path = argv[1]
    if binary and path == binary:
      print(path)
    else:
      print(f"ls: {path}: No such file or directory")
    sys.exit(0)
  if argv[:1] == ["getprop"]:
    models = dict(kv.split("=", 1) for kv in os.environ.get("FAKE_ADB_MODELS", "").split(",")
                  if "=" in kv)
    print({"ro.product.model": models.get(serial, "Pixel 1"),
           "ro.product.cpu.abi": "arm64-v8a"}.get(argv[1], ""))
    sys.exit(0)
  if argv[:1] == ["chmod"]:
    sys.exit(0)
  if argv[:2] == ["dumpsys", "battery"]:  # tenths of a degree, as Android prints it
    print(f"Current Battery Service state:\n  level: 80\n  temperature: {312 + 100 * hot}")
    sys.exit(0)
  if any("benchmark_model" in a for a in argv[:3]):
    text = open(os.environ["FAKE_ADB_OUTPUT"]).read()
    if hot:  # every timing scaled (count= and the summary's run counts are not times)
      scale = lambda m: f"{m.group(1)}={float(m.group(2)) * heat[2]:.6g}"
      text = re.sub(r"\b(first|curr|min|max|avg|std|median|p5|p95|p10|p90)=([-\d.e+]+)",
                    scale, text)
    drop = _rule("FAKE_ADB_DROP")
    with State() as state:
      state["runs"][serial] = state["runs"].get(serial, 0) + 1
      if drop and drop[0] == serial and state["runs"][serial] == drop[1]:
        state["gone"][serial] = int(drop[2])
    timed = re.findall(r"count=(\d+)[^\n]*?avg=([-\d.e+]+)", text)
    if timed and float(os.environ.get("FAKE_ADB_SLEEP_SCALE", 0)):
      count, avg = timed[-1]
      time.sleep(int(count) * float(avg) * 1e-6 * float(os.environ["FAKE_ADB_SLEEP_SCALE"]))
    print(text)
    sys.exit(0)
print(f"fake adb: unsupported {args}", file=sys.stderr)
sys.exit(1)
