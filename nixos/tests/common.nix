# Pieces shared by the VM tests in this directory.
#
# The scripts use the documented CLI (README, services/vigilctl/src/cli.rs):
#   vigilctl status --local          state of the system, over /run/vigil/hub.sock
#   vigilctl pair --here NAME --role admin        once, as root on the hub
#   vigilctl arm away | panic | disarm --pin 1234 (gRPC, paired)
#   vigilctl --json events --after 0 | cameras | clips
#   vigil-sensord sim set <sensor> open|closed   via /run/vigil/sim-gpio.sock
# and, where the output is not documented, commands marked ASSUMED in the test
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

  # Commands whose output the scripts parse.
  assumed = {
    # The kept events as JSON lines, oldest first (gRPC; pair_root first):
    # {"seq", "kind", "sensor" (also the camera), "message", ...}.
    events = "vigilctl --json events --after 0";
    # Today's report, from reportd's index (ReportService), in its JSON form
    # (docs/reports.md), which names every sensor that had events.
    dailyReport = "vigilctl --json report";
  };

  pin = "1234";

  # A camera's key: the same file on the hub and on the node that captures
  # it. A VM test needs the same secret on two machines, so it is fixed here
  # and therefore sits in the Nix store, which a real key never may (see
  # docs/nixos.md for how to make and copy one).
  testCameraKey = "vigil-vm-test-camera-key";
  cameraKeyFile = name: "/var/lib/vigil-secrets/${name}-key";

  # A oneshot that writes the camera's key before the units that load it
  # (LoadCredential= fails a unit whose file is missing).
  cameraKeyService =
    { camera, units }:
    {
      description = "Write the test key of camera ${camera}";
      wantedBy = units;
      before = units;
      serviceConfig = {
        Type = "oneshot";
        RemainAfterExit = true;
      };
      script = ''
        install -d -m 0700 /var/lib/vigil-secrets
        if [ ! -s ${cameraKeyFile camera} ]; then
          (umask 077; printf %s ${testCameraKey} > ${cameraKeyFile camera})
        fi
      '';
    };

  # A hook that appends every alert it reads on stdin (JSON lines) to a file
  # in /var/lib/vigil-hooks, the one place a hook's unit may write.
  recordingHook = pkgs.writeShellScript "vigil-test-record-alerts" ''
    exec ${pkgs.coreutils}/bin/tee -a /var/lib/vigil-hooks/test-hook.jsonl > /dev/null
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
    import time

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


    def last_seq(m):
        """The newest event's sequence number (0 if there is none)."""
        return max([e.get("seq", 0) for e in events(m)], default=0)


    def wait_event(m, kind, sensor, after=0, timeout=120):
        """Wait for an event of `kind` about `sensor` (a sensor or a camera)
        with a sequence number above `after`; returns it."""
        found = []

        def seen(_last_try):
            found[:] = [
                e
                for e in events(m)
                if e.get("kind") == kind and e.get("sensor") == sensor and e.get("seq", 0) > after
            ]
            return bool(found)

        retry(seen, timeout)
        return found[0]


    def camera_online(m, camera):
        """Whether the hub lists the camera as online (vigilctl cameras)."""
        status, out = m.execute("vigilctl --json cameras")
        if status != 0:
            return False
        for line in out.splitlines():
            if line.strip():
                c = json.loads(line)
                if c.get("name") == camera:
                    return c.get("online") is True
        return False


    def wait_camera(m, camera, online, timeout=180):
        retry(lambda _last_try: camera_online(m, camera) == online, timeout)
  '';
}
