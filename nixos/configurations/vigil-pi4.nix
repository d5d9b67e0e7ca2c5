# The main Vigil box: a Raspberry Pi 4 with reed switches and a PIR sensor on
# GPIO, a siren on a relay, and a Pi camera. It also expects the camera of the
# node described by vigil-camera.nix. The secrets under /var/lib/vigil-secrets
# are made on the Pi after the first boot (docs/nixos.md).
#
# An MQTT broker for Home Assistant, zigbee2mqtt and Vigil's MQTT bridge can
# run here too: `vigilPi4.mqttBroker.enable = true;` (off by default: it needs
# a TLS certificate and passwords made on the Pi first; docs/nixos.md, "MQTT").
{ config, lib, ... }:

let
  broker = config.vigilPi4.mqttBroker;
  # Mosquitto's TLS files, read by the broker as user mosquitto (its unit
  # has PrivateUsers=: the key must be mosquitto's own, 0400). Vigil's units
  # get the CA through LoadCredential=, so they need no access here.
  tlsDir = "/var/lib/mosquitto/tls";
  # One password per broker user, made on the Pi (never in the store).
  passwordFile = user: "/var/lib/vigil-secrets/mqtt-${user}-password";
in
{
  options.vigilPi4.mqttBroker = {
    enable = lib.mkEnableOption ''
      a local Mosquitto broker (nixpkgs' services.mosquitto) for Home
      Assistant, zigbee2mqtt and Vigil's MQTT bridge: TLS on port 8883 (open
      in the firewall), a password per user, docs/mqtt.md's ACL, and
      services.vigil.mqtt pointed at it'';
    users = lib.mkOption {
      type = lib.types.listOf (
        lib.types.enum [
          "vigil"
          "homeassistant"
          "zigbee2mqtt"
        ]
      );
      default = [
        "vigil"
        "homeassistant"
        "zigbee2mqtt"
      ];
      description = ''
        The broker's users, each with docs/mqtt.md's ACL
        (services.vigil.mqtt.brokerAcl) and the password in
        /var/lib/vigil-secrets/mqtt-<user>-password. Leave out the clients
        you do not run: the broker does not start while a password file is
        missing.
      '';
    };
  };

  config = lib.mkMerge [
    {
      networking.hostName = "vigil-pi4";

      # nixos-hardware: the `gpio` group and udev rules for /dev/gpiomem and
      # /dev/gpiochip* (rppal needs /dev/gpiomem, which the vendor kernel of the
      # raspberry-pi-4 module provides).
      hardware.raspberry-pi."4".gpio.enable = true;

      services.vigil = {
        enable = true;

        sensors = [
          {
            # Reed switch to ground, internal pull-up: reads high when open.
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
            # PIR output: active high, push-pull, so no pull resistor.
            name = "hall-motion";
            kind = "motion";
            pin = 22;
            pull = "off";
            debounceMs = 10;
            supervisionSecs = 86400;
          }
          {
            # Lid switch of the enclosure: a 24-hour zone, so no `modes`.
            name = "case-tamper";
            kind = "tamper";
            pin = 5;
          }
          # A Zigbee contact heard through zigbee2mqtt (needs the broker:
          # services.vigil.mqtt, or vigilPi4.mqttBroker below):
          # {
          #   name = "garage-door";
          #   kind = "door";
          #   source = "zigbee2mqtt";
          #   friendlyName = "garage_contact";
          #   supervisionSecs = 7200;
          # }
        ];

        outputs = {
          siren.pin = 23;
          buzzer.pin = 24;
        };

        cameras = [
          {
            # The Pi camera on this board: camd dials the hub on 127.0.0.1:7445.
            name = "porch";
            source = "libcamera";
            keyFile = "/var/lib/vigil-secrets/porch-key";
          }
          {
            # Captured by the vigil-camera node; listed so the hub expects it,
            # checks its key and opens the camera port (7445, TCP and UDP).
            name = "garage";
            local = false;
            keyFile = "/var/lib/vigil-secrets/garage-key";
          }
        ];

        # The defaults, spelled out: 30 s kept in memory per camera, clips from
        # 10 s before an alarm to 20 s after, kept 30 days.
        # recording = { ringSecs = 30; preRollSecs = 10; postCaptureSecs = 20; maxAgeDays = 30; };
        # events = { maxAgeDays = 365; maxMegabytes = 1024; };

        # The names the app reaches the hub by, for the hub's TLS certificate:
        # grpc.hostnames = [ "vigil-pi4" "vigil-pi4.local" ];

        users = [
          {
            name = "alice";
            role = "admin";
            # Created on first boot, never in the store (docs/nixos.md).
            pinHashFile = "/var/lib/vigil-secrets/alice-pin";
          }
        ];
      };
    }

    (lib.mkIf broker.enable {
      services.mosquitto = {
        enable = true;
        # Nothing bigger is relayed: a bigger packet would make Vigil's
        # clients reconnect (docs/mqtt.md, "Security").
        settings.max_packet_size = 1048576;
        # Nagle off: else a command waits for the delayed ACK of the
        # PUBACK before it (an MQTT arm took 23 ms instead of 2).
        settings.set_tcp_nodelay = true;
        listeners = [
          {
            # Every interface: Home Assistant and zigbee2mqtt are elsewhere
            # on the LAN; Vigil dials localhost.
            port = 8883;
            settings = {
              cafile = "${tlsDir}/ca.pem";
              certfile = "${tlsDir}/server.pem";
              keyfile = "${tlsDir}/server.key";
              allow_anonymous = false;
            };
            # Passwords through the broker's LoadCredential=; per-user ACLs
            # as docs/mqtt.md gives them, for the topics services.vigil.mqtt
            # uses.
            users = lib.genAttrs broker.users (user: {
              passwordFile = passwordFile user;
              acl = config.services.vigil.mqtt.brokerAcl.${user};
            });
          }
        ];
      };
      networking.firewall.allowedTCPPorts = [ 8883 ];

      # The bridge (and sensord, for Zigbee sensors) as broker user `vigil`.
      # The server certificate names localhost (docs/nixos.md, "MQTT").
      services.vigil.mqtt = {
        enable = true;
        broker = "localhost:8883";
        caFile = "${tlsDir}/ca.pem";
        # One line, vigil:<the password of mqtt-vigil-password>.
        credentialsFile = "/var/lib/vigil-secrets/mqtt-credentials";
        # A Zigbee keypad that arms and disarms through the bridge:
        # keypads = [ { name = "hall-keypad"; friendlyName = "hall_keypad"; } ];
      };
    })
  ];
}
