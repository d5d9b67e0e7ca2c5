# Pieces shared by the VM tests in this directory.
#
# The Rust features these tests drive are still being written. The scripts use
# the documented CLI:
#   vigilctl status --local          state of the system, over /run/vigil/hub.sock
#   vigilctl arm away                arm (on the hub, as root: the local socket)
#   vigilctl disarm --pin 1234
#   vigil-sensord sim set <sensor> open|closed   via /run/vigil/sim-gpio.sock
# and, where nothing is documented yet, commands marked ASSUMED in the test
# scripts; `assumed` below collects those so there is one place to adjust.
{ pkgs }:

rec {
  # Patterns (grep -Ei) matched against `vigilctl status --local`, whose
  # first line is "System: <mode> (<alarm state>), hub pid ..." (README).
  mode = {
    disarmed = "^System: disarmed";
    armedHome = "^System: home \\(idle\\)";
    armedAway = "^System: away \\(idle\\)";
    triggered = "\\(triggered\\)";
  };

  # ASSUMED commands, not yet documented by the Rust side.
  assumed = {
    # The kept events as JSON lines, oldest first (gRPC; pair_root first).
    events = "vigilctl --json events --after 0";
    # A daily report as text, written by reportd from its SQLite index.
    dailyReport = "vigilctl report daily --local";
  };

  pin = "1234";

  # A hook that appends every alert it reads on stdin (JSON lines) to a file
  # in vigil's state directory, the one place alertd's sandbox may write.
  recordingHook = pkgs.writeShellScript "vigil-test-record-alerts" ''
    exec ${pkgs.coreutils}/bin/tee -a /var/lib/vigil/test-hook.jsonl > /dev/null
  '';

  # A hub with simulated GPIO, as in the product brief's demo: two doors, a
  # PIR, a tamper switch, a siren; one admin; the recording hook.
  hubNode =
    { vigilModule }:
    { pkgs, ... }:
    {
      imports = [ vigilModule ];

      virtualisation.memorySize = 2048;
      virtualisation.cores = 2;

      services.vigil = {
        enable = true;
        simulatedGpio = true;
        sensors = [
          {
            name = "front-door";
            kind = "door";
            pin = 17;
          }
          {
            name = "back-door";
            kind = "door";
            pin = 27;
          }
          {
            name = "hall-motion";
            kind = "motion";
            pin = 22;
            pull = "off";
          }
          {
            name = "case-tamper";
            kind = "tamper";
            pin = 5;
          }
        ];
        outputs.siren.pin = 23;
        users = [
          {
            name = "alice";
            role = "admin";
            pinHashFile = "/var/lib/vigil-secrets/alice-pin";
          }
        ];
        hooks = [
          {
            name = "record";
            command = "${recordingHook}";
          }
        ];
        # Short delays keep the tests quick ([alarm] in the TOML).
        alarm.modes = {
          away = {
            exitDelaySecs = 5;
            entryDelaySecs = 5;
          };
          home = {
            exitDelaySecs = 0;
            entryDelaySecs = 5;
          };
        };
        logFilter = "info,vigil=debug";
      };

      # The PIN's argon2 hash is made on the machine at boot, as a user would
      # on first boot (docs/nixos.md): never in the Nix store.
      systemd.services.vigil-test-pin = {
        description = "Hash the test PIN for alice";
        wantedBy = [ "vigil-hub.service" ];
        before = [ "vigil-hub.service" ];
        serviceConfig = {
          Type = "oneshot";
          RemainAfterExit = true;
        };
        script = ''
          install -d -m 0700 /var/lib/vigil-secrets
          if [ ! -s /var/lib/vigil-secrets/alice-pin ]; then
            salt=$(head -c 12 /dev/urandom | base64)
            printf %s ${pin} | ${pkgs.libargon2}/bin/argon2 "$salt" -id -e \
              > /var/lib/vigil-secrets/alice-pin
          fi
        '';
      };

      # operator may script the alarm through the FIFO; stranger may not.
      users.users.operator = {
        isNormalUser = true;
        extraGroups = [ "vigil-control" ];
      };
      users.users.stranger.isNormalUser = true;

      environment.systemPackages = [
        pkgs.jq
        pkgs.sqlite
      ];
    };

  # Python helpers for the test scripts. `m` is the hub machine.
  helpers = ''
    import json
    import shlex

    MODE = ${builtins.toJSON mode}
    ASSUMED = ${builtins.toJSON assumed}
    PIN = "${pin}"


    def pair_root(m):
        """vigilctl's gRPC commands need a paired client: pair root on the
        hub itself, once (README: vigilctl and pairing)."""
        m.wait_for_open_port(7443)
        m.succeed("test -s /root/.config/vigil/hub || vigilctl pair --here vm-root --role admin")


    def wait_mode(m, mode, timeout=180):
        """Wait until `vigilctl status --local` shows the mode. The hub node
        sets 5 s exit/entry delays; the timeout leaves room for slow VMs."""
        pattern = MODE[mode]
        m.wait_until_succeeds(
            f"vigilctl status --local | grep -Eiq {shlex.quote(pattern)}", timeout=timeout
        )


    def events(m):
        """ASSUMED: the event log as a list of JSON objects."""
        out = m.succeed(ASSUMED["events"])
        return [json.loads(line) for line in out.splitlines() if line.strip()]


    def mentions(objs, word):
        return [o for o in objs if word in json.dumps(o).lower()]
  '';
}
