# (a) One machine, simulated GPIO: arm, breach, alarm, hook, disarm, report.
#
#   nix build .#checks.x86_64-linux.vm-single-node   (needs KVM)
#
# Documented CLI: vigilctl status --local / arm away / disarm --pin,
# vigil-sensord sim set. ASSUMED (not documented yet, see common.nix):
# `vigilctl events --local --json`, `vigilctl report daily --local`, the words
# printed by `vigilctl status --local`, and the FIFO command "arm home".
{ pkgs, vigilModule }:

let
  common = import ./common.nix { inherit pkgs; };
in
pkgs.testers.runNixOSTest {
  name = "vigil-single-node";

  nodes.hub = common.hubNode { inherit vigilModule; };

  testScript =
    common.helpers
    + ''
      hub.start()
      hub.wait_for_unit("vigil.target")
      for unit in ["vigil-hub", "vigil-sensord", "vigil-alertd", "vigil-reportd"]:
          hub.wait_for_unit(f"{unit}.service")
      hub.wait_for_file("/run/vigil/hub.sock")
      hub.wait_for_file("/run/vigil/sim-gpio.sock")
      hub.wait_for_open_port(7443)
      pair_root(hub)

      with subtest("starts disarmed"):
          wait_mode(hub, "disarmed")

      with subtest("one uid for every service (signals need it)"):
          uids = hub.succeed(
              "for u in vigil-hub vigil-sensord vigil-alertd vigil-reportd; do "
              "ps -o uid= -p $(systemctl show -P MainPID $u.service); done"
          ).split()
          assert len(set(uids)) == 1 and uids[0] != "0", uids

      with subtest("alert queue may hold 256 messages"):
          hub.succeed("[ $(cat /proc/sys/fs/mqueue/msg_max) -ge 256 ]")

      with subtest("control FIFO: vigil-control may write, others may not"):
          hub.succeed("test -p /run/vigil/control")
          hub.succeed("[ \"$(stat -c '%a %U %G' /run/vigil/control)\" = '620 vigil vigil-control' ]")
          # stranger cannot even reach /run/vigil (0710 vigil:vigil-control).
          hub.fail("su - stranger -c 'timeout 5 sh -c \"echo arm home > /run/vigil/control\"'")
          # operator can; the hub reads the FIFO (ASSUMED command word "arm home").
          hub.succeed("su - operator -c 'timeout 5 sh -c \"echo arm home > /run/vigil/control\"'")
          wait_mode(hub, "armedHome")
          hub.succeed(f"vigilctl disarm --pin {PIN}")
          wait_mode(hub, "disarmed")

      with subtest("arm away, open the front door: alarm"):
          hub.succeed("vigilctl arm away")
          wait_mode(hub, "armedAway")  # after the 5 s exit delay
          hub.succeed("vigil-sensord sim set front-door open")
          wait_mode(hub, "triggered")  # after the 5 s entry delay

      with subtest("the hook got the alarm as a JSON line on its stdin"):
          hub.wait_until_succeeds("test -s /var/lib/vigil-hooks/test-hook.jsonl", timeout=60)
          lines = hub.succeed("cat /var/lib/vigil-hooks/test-hook.jsonl").splitlines()
          alerts = [json.loads(line) for line in lines if line.strip()]
          assert mentions(alerts, "alarm"), alerts
          assert mentions(alerts, "front-door"), alerts

      with subtest("a wrong PIN does not disarm, the right one does"):
          hub.fail("vigilctl disarm --pin 0000")
          wait_mode(hub, "triggered", timeout=5)
          hub.succeed(f"vigilctl disarm --pin {PIN}")
          wait_mode(hub, "disarmed")
          hub.succeed("vigil-sensord sim set front-door closed")

      with subtest("a 24-hour zone triggers while disarmed"):
          hub.succeed("vigil-sensord sim set case-tamper open")
          wait_mode(hub, "triggered", timeout=60)
          hub.succeed("vigil-sensord sim set case-tamper closed")
          hub.succeed(f"vigilctl disarm --pin {PIN}")
          wait_mode(hub, "disarmed")

      with subtest("the event log has it all (ASSUMED: vigilctl events)"):
          log = events(hub)
          assert mentions(log, "front-door"), log
          assert mentions(log, "case-tamper"), log

      with subtest("reportd indexed the log and writes a report (ASSUMED: vigilctl report)"):
          hub.wait_until_succeeds(
              f"{ASSUMED['dailyReport']} > /tmp/report.txt && grep -qi front-door /tmp/report.txt",
              timeout=120,
          )
          print(hub.succeed("cat /tmp/report.txt"))

      with subtest("SIGHUP reloads, SIGTERM drains and exits 0"):
          hub.succeed("systemctl reload vigil-hub.service")
          hub.succeed("systemctl is-active vigil-hub.service")
          hub.succeed("systemctl stop vigil-alertd.service")
          hub.succeed("[ \"$(systemctl show -P ExecMainStatus vigil-alertd.service)\" = 0 ]")
          hub.succeed("systemctl start vigil-alertd.service")
          hub.wait_for_unit("vigil-alertd.service")
    '';
}
