# (e) MQTT: a broker machine (nixpkgs' Mosquitto: TLS, a password per user,
# docs/mqtt.md's ACL as services.vigil.mqtt.brokerAcl gives it) and the hub
# running the bridge, vigil-mqttd, paired by hand as docs/nixos.md says.
#
#   nix build .#checks.x86_64-linux.vm-mqtt   (needs KVM)
#
# What is checked: the bridge's unit (its own uid, the broker's files only
# through its credentials, no hub.sock), pairing it with `vigilctl
# --credentials /var/lib/vigil-mqtt/hub pair --here mqtt --role user`, the
# retained `vigil/<hub id>/availability` = `online`, `ARM_AWAY` on
# `vigil/<hub id>/alarm/set` (as Home Assistant's broker user) arms the
# alarm, a Zigbee door that sensord hears on the same broker, a stop that
# publishes `offline` and exits 0, a SIGKILL that the broker's last will
# reports and systemd restarts.
#
# The topics, payloads and the bridge's log line it waits for are
# docs/mqtt.md's and services/mqttd/src/lib.rs's.
{ pkgs, vigilModule }:

let
  common = import ./common.nix { inherit pkgs; };
  inherit (pkgs) lib;

  port = 8883;

  # The broker users' passwords. A VM test needs them on two machines, so
  # they are fixed here and sit in the Nix store, which real ones never may
  # (docs/nixos.md, "MQTT"); the hub's copy is written at boot, as the
  # module refuses a secret in the store.
  passwords = {
    vigil = "vigil-vm-test-mqtt";
    homeassistant = "homeassistant-vm-test-mqtt";
    zigbee2mqtt = "zigbee2mqtt-vm-test-mqtt";
  };
  credentialsFile = "/var/lib/vigil-secrets/mqtt-credentials";

  # A CA and the broker's certificate for the name `broker` (the test
  # driver's /etc/hosts resolves it on every node), made at build time the
  # way tests/src/mqtt.rs makes them. The key is in the store: a test only.
  tls =
    pkgs.runCommand "vigil-test-mqtt-tls"
      {
        nativeBuildInputs = [ pkgs.openssl ];
      }
      ''
        mkdir -p "$out"
        cd "$out"
        openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes \
          -keyout ca.key -out ca.pem -days 3650 -subj /CN=vigil-test-broker-ca \
          -addext basicConstraints=critical,CA:TRUE \
          -addext keyUsage=critical,keyCertSign,cRLSign
        openssl req -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes \
          -keyout server.key -out server.csr -subj /CN=broker
        printf 'subjectAltName=DNS:broker\nbasicConstraints=CA:FALSE\nextendedKeyUsage=serverAuth\n' \
          > server.ext
        openssl x509 -req -in server.csr -CA ca.pem -CAkey ca.key -CAcreateserial \
          -out server.pem -days 3650 -extfile server.ext
        rm ca.key ca.srl server.csr server.ext
      '';
in
pkgs.testers.runNixOSTest {
  name = "vigil-mqtt";

  nodes = {
    # The broker, as the Pi configuration's vigilPi4.mqttBroker sets it up,
    # on a machine of its own; it also plays Home Assistant and zigbee2mqtt
    # with mosquitto_pub and mosquitto_sub.
    broker =
      { config, pkgs, ... }:
      {
        # Only for services.vigil.mqtt.brokerAcl (Vigil itself stays off
        # here): the ACL for the default topics, which the hub uses.
        imports = [ vigilModule ];

        services.mosquitto = {
          enable = true;
          settings.max_packet_size = 1048576;
          # Nagle off: else a command waits for the delayed ACK of the
          # PUBACK before it (an MQTT arm took 23 ms instead of 2).
          settings.set_tcp_nodelay = true;
          listeners = [
            {
              inherit port;
              settings = {
                cafile = "${tls}/ca.pem";
                certfile = "${tls}/server.pem";
                keyfile = "${tls}/server.key";
                allow_anonymous = false;
              };
              users = lib.mapAttrs (user: password: {
                passwordFile = pkgs.writeText "mqtt-${user}-password" password;
                acl = config.services.vigil.mqtt.brokerAcl.${user};
              }) passwords;
            }
          ];
        };
        networking.firewall.allowedTCPPorts = [ port ];
        environment.systemPackages = [ pkgs.mosquitto ];
      };

    hub =
      { ... }:
      {
        imports = [ (common.hubNode { inherit vigilModule; }) ];
        services.vigil = {
          # A Zigbee door beside the hub node's wired sensors.
          sensors = lib.mkAfter [
            {
              name = "garage-door";
              kind = "door";
              source = "zigbee2mqtt";
              friendlyName = "garage_contact";
            }
          ];
          mqtt = {
            enable = true;
            broker = "broker:${toString port}";
            caFile = "${tls}/ca.pem";
            inherit credentialsFile;
          };
        };
        # The bridge's broker credentials, written before the units that
        # load them (LoadCredential= fails a unit whose file is missing).
        systemd.services.vigil-test-mqtt-credentials = {
          description = "Write the test broker credentials of the bridge and sensord";
          wantedBy = [
            "vigil-mqttd.service"
            "vigil-sensord.service"
          ];
          before = [
            "vigil-mqttd.service"
            "vigil-sensord.service"
          ];
          serviceConfig = {
            Type = "oneshot";
            RemainAfterExit = true;
          };
          script = ''
            install -d -m 0700 /var/lib/vigil-secrets
            (umask 077; printf 'vigil:%s\n' ${passwords.vigil} > ${credentialsFile})
          '';
        };
      };
  };

  testScript =
    common.helpers
    + ''
      PASSWORDS = ${builtins.toJSON passwords}
      CA = "${tls}/ca.pem"
      BRIDGE = "vigil-mqttd.service"


      def client(tool, user):
          """mosquitto_pub or mosquitto_sub on the broker machine, as `user`."""
          return (
              f"mosquitto_{tool} -V mqttv311 -h broker -p ${toString port} --cafile {CA} "
              f"-u {user} -P {shlex.quote(PASSWORDS[user])}"
          )


      def publish(topic, payload, user, retain=False):
          flags = "-q 1 -r" if retain else "-q 1"
          broker.succeed(
              f"{client('pub', user)} {flags} -t {shlex.quote(topic)} -m {shlex.quote(payload)}"
          )


      def retained(topic, user="homeassistant"):
          """The retained message on `topic` (a wildcard may stand for the
          hub id) as (topic, payload), or None."""
          status, out = broker.execute(f"{client('sub', user)} -v -C 1 -W 5 -t {shlex.quote(topic)}")
          line = out.strip()
          if status != 0 or not line:
              return None
          name, _, payload = line.partition(" ")
          return name, payload


      def wait_retained(topic, payload, timeout=120):
          """Wait until the retained message on `topic` is `payload`; returns
          the topic it came on."""
          found = []

          def seen(_last_try):
              got = retained(topic)
              found[:] = [got] if got else []
              return bool(got) and got[1] == payload

          retry(seen, timeout)
          return found[0][0]


      def sensor_state(m, name):
          """The sensor's state word in `vigilctl --json status --local`."""
          status = json.loads(m.succeed("vigilctl --json status --local"))
          return next(s["state"] for s in status["sensors"] if s["name"] == name)


      def wait_sensor(m, name, state, timeout=60):
          retry(lambda _last_try: sensor_state(m, name) == state, timeout)


      start_all()
      broker.wait_for_unit("mosquitto.service")
      broker.wait_for_open_port(${toString port})
      hub.wait_for_unit("vigil-hub.service")
      hub.wait_for_unit(BRIDGE)
      hub.wait_for_open_port(7443)
      pair_root(hub)

      with subtest("the bridge: its own uid, its state directory, its credentials, no hub.sock"):
          assert hub.succeed(f"systemctl show -P User {BRIDGE}").strip() == "vigil-mqtt"
          assert hub.succeed(f"systemctl show -P Restart {BRIDGE}").strip() == "on-failure"
          assert "78" in hub.succeed(f"systemctl show -P RestartPreventExitStatus {BRIDGE}")
          assert hub.succeed(f"systemctl show -P StateDirectory {BRIDGE}").strip() == "vigil-mqtt"
          families = hub.succeed(f"systemctl show -P RestrictAddressFamilies {BRIDGE}").split()
          assert sorted(families) == ["AF_INET", "AF_INET6", "AF_UNIX"], families
          pid = hub.succeed(f"systemctl show -P MainPID {BRIDGE}").strip()
          assert hub.succeed(f"stat -c %U /proc/{pid}").strip() == "vigil-mqtt"
          for cred in ["mqtt-ca", "mqtt-credentials"]:
              hub.succeed(f"nsenter -t {pid} -m test -s /run/credentials/{BRIDGE}/{cred}")
          # Its file names its own copies; the shared one names sensord's.
          toml = hub.succeed("cat /etc/vigil/mqttd.toml")
          assert f'credentials_file = "/run/credentials/{BRIDGE}/mqtt-credentials"' in toml, toml
          assert 'hub = "127.0.0.1:7443"' in toml, toml
          assert 'hub_credentials = "/var/lib/vigil-mqtt/hub"' in toml, toml
          hub.succeed(
              "grep -q 'credentials_file = \"/run/credentials/vigil-sensord.service/mqtt-credentials\"' "
              "/etc/vigil/vigil.toml"
          )
          # No password in any generated file.
          hub.fail(f"grep -Rl {PASSWORDS['vigil']} /etc/vigil/")
          # ProtectSystem=strict: only its state directory is writable.
          hub.succeed(f"nsenter -t {pid} -m sh -c 'test -w /var/lib/vigil-mqtt && ! test -w /etc && ! test -w /run/vigil'")
          # hub.sock admits the hub's uid and root only.
          hub.fail("su -s /bin/sh vigil-mqtt -c 'vigilctl status --local'")
          hub.fail("su -s /bin/sh vigil-mqtt -c 'ls /var/lib/vigil'")

      with subtest("systemd-analyze security of the bridge, under its bound"):
          # 1.2 measured with `systemd-analyze security --offline=true` on the
          # unit nixos/eval/run.sh prints (the hub measures 1.2 the same way,
          # as in security.nix), plus 0.2.
          out = hub.succeed(f"systemd-analyze security --no-pager {BRIDGE}")
          print(out)
          hub.succeed(f"systemd-analyze security --threshold=14 {BRIDGE}")

      with subtest("sensord, with a Zigbee sensor, has the network and the broker's files"):
          pid = hub.succeed("systemctl show -P MainPID vigil-sensord.service").strip()
          hub.succeed(f"nsenter -t {pid} -m test -s /run/credentials/vigil-sensord.service/mqtt-credentials")
          assert hub.succeed("systemctl show -P PrivateNetwork vigil-sensord.service").strip() == "no"

      with subtest("pair the bridge once, as docs/nixos.md says"):
          hub.succeed("vigilctl --credentials /var/lib/vigil-mqtt/hub pair --here mqtt --role user")
          hub.succeed("chown -R vigil-mqtt:vigil-mqtt /var/lib/vigil-mqtt/hub")
          hub.succeed("[ \"$(stat -c '%U %a' /var/lib/vigil-mqtt/hub/client.key)\" = 'vigil-mqtt 600' ]")
          # It retries the hub every 2 s and reads the new credentials.
          hub.wait_until_succeeds(
              f"journalctl -u {BRIDGE} -o cat | grep -q 'connected to the hub'", timeout=60
          )

      with subtest("the retained availability is online, under the hub's id"):
          availability = wait_retained("vigil/+/availability", "online")
          hub_id = availability.split("/")[1]
          system = json.loads(hub.succeed("vigilctl --json system"))
          assert system["hub_id"] == hub_id, (system, availability)
          wait_retained(f"vigil/{hub_id}/alarm/state", "disarmed")

      with subtest("ARM_AWAY over MQTT (Home Assistant's user) arms the alarm"):
          wait_mode(hub, "disarmed")
          publish(f"vigil/{hub_id}/alarm/set", json.dumps({"action": "ARM_AWAY"}), "homeassistant")
          wait_mode(hub, "armedAway")  # after the hub node's 5 s exit delay
          wait_retained(f"vigil/{hub_id}/alarm/state", "armed_away")
          hub.succeed(f"vigilctl disarm --pin {PIN}")
          wait_mode(hub, "disarmed")
          wait_retained(f"vigil/{hub_id}/alarm/state", "disarmed")

      with subtest("the broker's ACL: only Home Assistant's user commands the panel"):
          publish(f"vigil/{hub_id}/alarm/set", json.dumps({"action": "ARM_AWAY"}), "zigbee2mqtt")
          time.sleep(8)  # longer than the exit delay
          wait_mode(hub, "disarmed", timeout=5)

      with subtest("sensord hears a Zigbee door on the same broker; the bridge publishes it"):
          publish("zigbee2mqtt/garage_contact/availability", '{"state":"online"}', "zigbee2mqtt", retain=True)
          publish("zigbee2mqtt/garage_contact", '{"contact":true,"battery_low":false}', "zigbee2mqtt", retain=True)
          wait_sensor(hub, "garage-door", "closed")
          publish("zigbee2mqtt/garage_contact", '{"contact":false,"battery_low":false}', "zigbee2mqtt", retain=True)
          wait_sensor(hub, "garage-door", "open")
          wait_retained(f"vigil/{hub_id}/sensor/garage-door/state", "ON")
          publish("zigbee2mqtt/garage_contact", '{"contact":true,"battery_low":false}', "zigbee2mqtt", retain=True)
          wait_sensor(hub, "garage-door", "closed")

      with subtest("a stop publishes offline and exits 0; started again, online"):
          hub.succeed(f"systemctl stop {BRIDGE}")
          assert hub.succeed(f"systemctl show -P ExecMainStatus {BRIDGE}").strip() == "0"
          wait_retained(f"vigil/{hub_id}/availability", "offline")
          hub.succeed(f"systemctl start {BRIDGE}")
          wait_retained(f"vigil/{hub_id}/availability", "online")

      with subtest("SIGKILL: the last will says offline, systemd restarts it, online again"):
          # Every availability message from now on, in the background.
          broker.execute(
              f"({client('sub', 'homeassistant')} -v -t vigil/{hub_id}/availability "
              "> /tmp/availability.log 2>&1 &)"
          )
          broker.wait_until_succeeds("grep -q online /tmp/availability.log", timeout=30)
          hub.succeed(f"systemctl kill --signal=SIGKILL {BRIDGE}")
          hub.wait_until_succeeds(f"[ $(systemctl show -P NRestarts {BRIDGE}) -ge 1 ]", timeout=60)
          broker.wait_until_succeeds("grep -q offline /tmp/availability.log", timeout=60)
          wait_retained(f"vigil/{hub_id}/availability", "online")
          print(broker.succeed("cat /tmp/availability.log"))
          # Still the alarm's servant: a command after the restart works.
          publish(f"vigil/{hub_id}/alarm/set", "ARM_AWAY", "homeassistant")
          wait_mode(hub, "armedAway")
          hub.succeed(f"vigilctl disarm --pin {PIN}")
          wait_mode(hub, "disarmed")
    '';
}
