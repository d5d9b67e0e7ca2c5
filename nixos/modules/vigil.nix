# services.vigil: the Vigil home-security appliance.
#
# One uid per trust domain (ARCHITECTURE.md, "Users and groups"):
#   vigil          hub and sensord (the doorbell is a signal: same uid)
#   vigil-alertd   alertd: reads the alert queue and joins hub.sock through
#                  group vigil-alerts, nothing else of the hub's
#   vigil-hook     every hook program, in its own socket-activated unit
#                  (vigil-hook-<name>@.service) fed by alertd over a socket
#                  only alertd may connect to
#   vigil-reportd  reportd: reads the event log through group vigil-log,
#                  writes only /var/lib/vigil-reportd (group vigil-reportd,
#                  which the hub is in to read the index)
#   vigil-camd     camd: talks to the hub over TCP only
#   vigil-mqtt     the MQTT bridge (mqtt.enable): a paired gRPC client of the
#                  hub over TCP, like a phone, and a client of the broker;
#                  writes only /var/lib/vigil-mqtt (its pairing)
# A compromised hook has vigil-hook's rights: its stdin and its credentials.
#
# Units (all `PartOf=vigil.target`, so `systemctl restart vigil.target` restarts
# the lot):
#   vigil-hub.service           alarm, gRPC API, camera server, event log writer
#   vigil-sensord.service       GPIO (rppal or simulated)
#   vigil-camd@<camera>.service one per camera with `local = true`; dials the
#                               hub's camera port (TCP) and sends it signed
#                               heartbeats (UDP, same port); with
#                               hub = "discover" it first waits for the hub's
#                               UDP beacon on its discovery port
#   vigil-alertd.service        hooks and webhooks
#   vigil-reportd.service       SQLite index and reports
#   vigil-mqttd.service         the MQTT bridge (mqtt.enable): Home Assistant,
#                               the event stream, Zigbee keypads; paired once
#                               by hand (docs/nixos.md, "MQTT")
#
# Shared paths:
#   /etc/vigil/vigil.toml         the generated config (every service, --config)
#   /etc/vigil/camd/<camera>.toml the same, with [[cameras]] cut to that camera,
#                                 its key_file in camd's credentials and
#                                 without motion/motion_percent (the hub's job)
#   /etc/vigil/mqttd.toml         the same, with [mqtt]'s files in the bridge's
#                                 credentials (vigil.toml names sensord's)
#   /run/vigil                    sockets, ipc-channel rendezvous (TMPDIR), FIFO;
#                                 0711: entered by all, listed by vigil only
#   /run/vigil/hub.sock           0660, group vigil-alerts
#   /run/vigil/control            control FIFO, writable by group vigil-control
#   /run/vigil-hooks/<hook>.sock  0600 vigil-alertd: the hooks' sockets
#   /var/lib/vigil                the hub's state: alarm state, clips/, TLS keys;
#                                 0710 vigil:vigil-log
#   /var/lib/vigil/events         the event log, 2750 vigil:vigil-log (segments
#                                 0640: reportd reads, never writes)
#   /var/lib/vigil-reportd        reports.db, reports/ (reportd; group
#                                 vigil-reportd, so the hub reads the index)
#   /var/cache/vigil              GStreamer's plugin registry (hub, camd)
#   /var/lib/vigil-mqtt/hub       the bridge's pairing (vigilctl --credentials),
#                                 0700 vigil-mqtt (its StateDirectory=)
#   /dev/shm/sem.vigil-recording  the recording slots (hub)
#
# The TOML carries only the tables the Rust side reads (it parses with
# deny_unknown_fields): [runtime], [gpio], [[sensors]], [outputs], [[users]],
# [[cameras]], [recording], [events], [alerts], [grpc], [[hooks]],
# [telemetry] always; [alarm] and [webhook] only when one of their options
# is set; [mqtt] only with mqtt.enable. The options of a table it does not
# read yet (reports) emit it only when set away from their default, with a
# warning; see docs/nixos.md.
#
# Where an option's default repeats a Rust default (every value the file
# carries that no option was set for), nixos/eval/module-defaults.toml holds
# what the module writes with no option set, and the Rust test
# services/vigil-config/tests/nixos_defaults.rs checks each such value
# against the Rust default: change a default on one side only and
# nixos/eval/run.sh (the file is stale) or that test (the values differ)
# fails.
{
  config,
  lib,
  pkgs,
  ...
}:

let
  inherit (lib)
    mkOption
    mkEnableOption
    mkIf
    mkMerge
    types
    literalExpression
    ;

  cfg = config.services.vigil;
  settingsFormat = pkgs.formats.toml { };

  runtimeDir = "/run/vigil";
  stateDir = "/var/lib/vigil";
  reportsDir = "/var/lib/vigil-reportd";
  hookSocketDir = "/run/vigil-hooks";
  hookSocket = h: "${hookSocketDir}/${h.name}.sock";
  hookUnit = h: "vigil-hook-${h.name}";
  configPath = "/etc/vigil/vigil.toml";
  camdConfigPath = name: "/etc/vigil/camd/${name}.toml";
  # The MQTT bridge: its own file (its credentials' paths in [mqtt]) and its
  # state, the pairing that `vigilctl --credentials` writes (docs/nixos.md).
  mqttdConfigPath = "/etc/vigil/mqttd.toml";
  mqttStateDir = "/var/lib/vigil-mqtt";
  mqttHubCredentials = "${mqttStateDir}/hub";

  # A socket address as Rust's SocketAddr parses it: IPv4:port or
  # [IPv6]:port, no host names.
  socketAddress = types.strMatching "([0-9]{1,3}([.][0-9]{1,3}){3}|\\[[0-9a-fA-F:.]+]):[0-9]{1,5}";

  # The host of an "ip:port" or "[v6]:port" address, without the brackets.
  hostOf =
    address:
    let
      v6 = builtins.match "\\[(.*)]:[0-9]+" address;
      v4 = builtins.match "(.*):[0-9]+" address;
    in
    if v6 != null then builtins.head v6 else builtins.head v4;

  # The port of a "host:port" or "[v6]:port" address.
  portOf =
    default: address:
    let
      m = builtins.match ".*:([0-9]+)" address;
    in
    if m == null then default else lib.toInt (builtins.head m);

  # The alert queue's size, written to [alerts] (depth, msg_size) and
  # allowed by the sysctls below: the queue is created with exactly these.
  mqueue = {
    msgMax = 256;
    msgSizeMax = 8192;
    # RLIMIT_MSGQUEUE counts every queue the uid creates:
    # msgMax * (msgSizeMax + per-message overhead), with room for 3 queues.
    limitBytes = 8 * 1024 * 1024;
  };

  twentyFourHourKinds = [
    "tamper"
    "panic"
    "smoke"
    "water"
  ];

  nameType = types.strMatching "[a-z0-9_-]{1,31}";
  bcmPin = types.ints.between 2 27;
  level = types.enum [
    "high"
    "low"
  ];

  # A secret must never reach the Nix store: a string (not a path, which Nix
  # would copy into the store) holding an absolute path outside it.
  secretPath = types.strMatching "/.*" // {
    description = "absolute path to a file outside the Nix store (read by systemd LoadCredential)";
  };

  # An MQTT topic as `[mqtt]` takes one (vigil_config::is_valid_topic): no
  # wildcards, no empty level, at most 200 characters.
  topicType = types.addCheck (types.strMatching "[^/+#]+(/[^/+#]+)*") (t: lib.stringLength t <= 200) // {
    description = "MQTT topic without `+`, `#` or empty levels (at most 200 characters)";
  };

  # The options of a sensor that mean nothing to a Zigbee one (the Rust side
  # refuses them there): a wired sensor's pull resistor and active level.
  wiringOptions = [
    "pull"
    "active"
  ];

  sensorModule =
    { options, ... }:
    {
      options = {
        name = mkOption {
          type = nameType;
          example = "front-door";
          description = "Name of the sensor: 1 to 31 characters from a-z, 0-9, `-` and `_`.";
        };
        source = mkOption {
          type = types.enum [
            "gpio"
            "zigbee2mqtt"
          ];
          default = "gpio";
          description = ''
            Where the sensor is heard (`source`): `gpio`, a wire on {option}`pin`;
            or `zigbee2mqtt`, a Zigbee device whose messages sensord reads on
            the broker of {option}`services.vigil.mqtt` (which must be
            enabled), by its {option}`friendlyName`. A Zigbee sensor has no
            `pin`, `pull` or `active`. Written only for `zigbee2mqtt`.
          '';
        };
        friendlyName = mkOption {
          type = types.nullOr topicType;
          default = null;
          example = "back_door_contact";
          description = ''
            With `source = "zigbee2mqtt"` (required there, refused otherwise):
            the device's friendly name in zigbee2mqtt, the topic
            `<zigbee2mqttTopic>/<friendlyName>` (`friendly_name`).
          '';
        };
        kind = mkOption {
          type = types.enum [
            "door"
            "window"
            "motion"
            "tamper"
            "panic"
            "smoke"
            "water"
          ];
          description = "What the sensor is. tamper, panic, smoke and water are 24-hour zones.";
        };
        pin = mkOption {
          type = types.nullOr bcmPin;
          default = null;
          example = 17;
          description = "BCM GPIO number (2 to 27), unique across sensors and outputs. Required for `source = \"gpio\"`; null for a Zigbee sensor.";
        };
        pull = mkOption {
          type = types.enum [
            "up"
            "down"
            "off"
          ];
          default = "up";
          description = "Internal pull resistor (GPIO sensors only).";
        };
        active = mkOption {
          type = level;
          default = "high";
          description = "Level at which the sensor is active (door open, motion seen; GPIO sensors only).";
        };
        debounceMs = mkOption {
          type = types.nullOr (types.ints.between 0 5000);
          default = null;
          example = 10;
          description = "Debounce time in ms; null keeps the Rust default (50).";
        };
        modes = mkOption {
          type = types.nullOr (
            types.listOf (
              types.enum [
                "home"
                "away"
                "night"
                "vacation"
                "custom"
              ]
            )
          );
          default = null;
          example = [
            "away"
            "night"
          ];
          description = ''
            Armed modes in which the sensor triggers; null keeps the Rust default
            (motion: away and vacation; doors and windows: every armed mode).
            Must be null for 24-hour kinds.
          '';
        };
        supervisionSecs = mkOption {
          type = types.nullOr (types.ints.between 60 31536000);
          default = null;
          example = 86400;
          description = "Fault the sensor when it has not changed for this long (at least 60 s).";
        };
        response = mkOption {
          type = types.nullOr (
            types.enum [
              "entry"
              "instant"
            ]
          );
          default = null;
          description = "`entry` starts the entry delay, `instant` triggers at once; null keeps the Rust default (doors: entry, others: instant).";
        };
        armAfterClose = mkOption {
          type = types.nullOr types.bool;
          default = null;
          description = "Open at arming time: armed once it closes (instead of refusing to arm).";
        };
        autoBypass = mkOption {
          type = types.nullOr types.bool;
          default = null;
          description = "Open at arming time: bypassed until disarm (instead of refusing to arm).";
        };
        doubleKnock = mkOption {
          type = types.nullOr nameType;
          default = null;
          example = "hall";
          description = "Double-knock group: the sensor triggers only together with another sensor of the group.";
        };
        triggerOnFault = mkOption {
          type = types.nullOr types.bool;
          default = null;
          description = "A fault (silence, unavailability) triggers the alarm when armed.";
        };
        # Which of `wiringOptions` the configuration set (rather than left to
        # their defaults), for the assertion that a Zigbee sensor has none.
        wiringSet = mkOption {
          type = types.listOf types.str;
          internal = true;
          readOnly = true;
          default = lib.filter (n: options.${n}.highestPrio < (lib.mkOptionDefault null).priority) wiringOptions;
        };
      };
    };

  modeTimingModule = {
    options = {
      exitDelaySecs = mkOption {
        type = types.nullOr (types.ints.between 0 300);
        default = null;
        description = "Time to leave after arming (Rust default: 60 s away/vacation, 0 home/night).";
      };
      entryDelaySecs = mkOption {
        type = types.nullOr (types.ints.between 0 45);
        default = null;
        description = "Time to disarm after an entry sensor opens, at most 45 s (EN 50131 grade 2).";
      };
      triggerSecs = mkOption {
        type = types.nullOr (types.ints.between 120 900);
        default = null;
        description = "How long the siren sounds, 120 to 900 s (EN 50131 grade 2; Rust default 180).";
      };
    };
  };

  outputModule = {
    options = {
      pin = mkOption {
        type = bcmPin;
        description = "BCM GPIO number driving the relay.";
      };
      active = mkOption {
        type = level;
        default = "high";
        description = "Level that switches the output on.";
      };
    };
  };

  cameraModule =
    { config, ... }:
    {
      options = {
        name = mkOption {
          type = nameType;
          example = "porch";
          description = "Name of the camera (`name`): the same on the hub and on the node that captures it.";
        };
        source = mkOption {
          type = types.enum [
            "libcamera"
            "v4l2"
            "test"
          ];
          default = "libcamera";
          description = "libcamera (Pi camera), v4l2 (USB webcam) or test (videotestsrc) (`source`).";
        };
        device = mkOption {
          type = types.nullOr types.str;
          default = null;
          example = "/dev/video0";
          description = "V4L2 device; only for `source = \"v4l2\"` (`device`; null: the Rust default /dev/video0).";
        };
        width = mkOption {
          type = types.addCheck (types.ints.between 16 3840) (w: lib.mod w 2 == 0) // {
            description = "even integer between 16 and 3840";
          };
          default = 1280;
          description = "Frame width (`width`).";
        };
        height = mkOption {
          type = types.ints.between 16 2160;
          default = 720;
          description = "Frame height (`height`).";
        };
        framerate = mkOption {
          type = types.ints.between 1 60;
          default = 15;
          description = "Frames per second (`framerate`).";
        };
        encoder = mkOption {
          type = types.enum [
            "auto"
            "x264"
            "v4l2"
          ];
          default = "auto";
          description = ''
            H.264 encoder (`encoder`): v4l2 is the board's hardware encoder
            (v4l2h264enc, the Raspberry Pi's), x264 the software one, auto the
            hardware one when GStreamer has it.
          '';
        };
        bitrateKbps = mkOption {
          type = types.ints.between 100 50000;
          default = 2000;
          description = "Target bitrate in kbit/s (`bitrate_kbps`).";
        };
        keyframeSecs = mkOption {
          type = types.ints.between 1 10;
          default = 1;
          description = "Seconds between key frames (`keyframe_secs`); clips and live view start at one.";
        };
        hub = mkOption {
          type = types.nullOr (types.either (types.enum [ "discover" ]) (types.strMatching ".+:[0-9]+"));
          default = null;
          example = "vigil-pi4:7445";
          description = ''
            The hub's camera port as camd dials it, `host:port` (`hub`): TCP
            for the video, UDP on the same port for heartbeats. Or
            `"discover"`: camd waits for the hub's UDP beacon on
            {option}`discoveryPort` and dials the sender's address on the
            port the beacon announces (the hub must broadcast it,
            {option}`services.vigil.recording.beacon`). null: the loopback
            address and the port of {option}`services.vigil.recording.listen`
            (the Rust default is 127.0.0.1:7445), right for a camera on the
            hub itself; a camera node must set it (an address or
            `"discover"`).
          '';
        };
        discoveryPort = mkOption {
          type = types.port;
          default = 7446;
          description = ''
            With `hub = "discover"`: the UDP port camd listens on for the
            hub's beacon (`discovery_port`), the port of the hub's
            {option}`services.vigil.recording.beacon`. The firewall opens it
            (UDP) on the node that captures the camera, with
            {option}`services.vigil.openFirewall`. Written only with
            `hub = "discover"`; ignored otherwise.
          '';
        };
        keyFile = mkOption {
          type = types.nullOr secretPath;
          default = null;
          example = "/var/lib/vigil-secrets/porch-key";
          description = ''
            File holding the camera's secret, the same on the hub and on the
            camera node (make it with
            `head -c 32 /dev/urandom | base64 > FILE`). Never in the Nix
            store: systemd reads it with LoadCredential= and hands a private
            copy to vigil-hub and to vigil-camd@<name> (`key_file`). Required.
            The Rust side also takes the key inline (`key`), for tests and the
            demo only; the module does not offer that, as anything in the
            generated file is world-readable in the Nix store.
          '';
        };
        motion = mkOption {
          type = types.bool;
          default = false;
          description = ''
            Motion detection on the camera's video (`motion`): the hub
            compares the camera's key frames and adds a motion sensor named
            `<name>-motion` to its sensor table, after the wired sensors
            (armed in away and vacation, instant; docs/camera-link.md,
            "Motion on video"). That name must not be a sensor's and must fit
            in 31 characters, so the camera's name in 24. The hub does the
            work: set it in the hub's {option}`services.vigil.cameras`; camd's
            file does not carry it.
          '';
        };
        motionPercent = mkOption {
          type = types.ints.between 1 100;
          default = 2;
          description = ''
            With `motion = true`: the share of the picture, in percent, that
            must change between two key frames to count as motion
            (`motion_percent`). Written only with `motion = true`.
          '';
        };
        local = mkOption {
          type = types.bool;
          default = true;
          description = ''
            Whether this machine captures the camera (runs
            `vigil-camd@<name>.service`). Set false on the hub for a camera
            that runs on another node, so the hub still expects it, checks its
            key and opens the camera port.
          '';
        };
      };
    };

  userModule = {
    options = {
      name = mkOption {
        type = nameType;
        example = "alice";
        description = "User name.";
      };
      role = mkOption {
        type = types.enum [
          "admin"
          "user"
          "guest"
        ];
        default = "user";
        description = "Role of the user.";
      };
      pinHashFile = mkOption {
        type = secretPath;
        example = "/var/lib/vigil-secrets/alice-pin";
        description = ''
          File holding the argon2 PHC string of the user's PIN. Never in the
          Nix store: systemd reads it as root with LoadCredential= and hands
          the hub a private copy under /run/credentials/vigil-hub.service/.
        '';
      };
      duressPinHashFile = mkOption {
        type = types.nullOr secretPath;
        default = null;
        description = "Like `pinHashFile`, for the duress PIN: disarms and raises a silent alert.";
      };
    };
  };

  hookModule = {
    options = {
      name = mkOption {
        type = nameType;
        example = "ntfy";
        description = "Hook name.";
      };
      command = mkOption {
        type = types.str;
        example = literalExpression ''"''${pkgs.my-notifier}/bin/notify"'';
        description = "Program that reads alerts as JSON lines on its stdin.";
      };
      args = mkOption {
        type = types.listOf types.str;
        default = [ ];
        description = "Arguments of the program.";
      };
    };
  };

  keypadModule = {
    options = {
      name = mkOption {
        type = nameType;
        example = "hall-keypad";
        description = "Vigil's name for the keypad, in the bridge's log (`name`).";
      };
      friendlyName = mkOption {
        type = topicType;
        example = "hall_keypad";
        description = "Its friendly name in zigbee2mqtt, the topic `<zigbee2mqttTopic>/<friendlyName>` (`friendly_name`).";
      };
    };
  };

  dropNulls = lib.filterAttrs (_: v: v != null);

  credentialPath = unit: id: "/run/credentials/${unit}.service/${id}";
  pinCredential = u: "pin-${u.name}";
  duressCredential = u: "duress-pin-${u.name}";
  # A camera's key: the hub holds every camera's, camd its own.
  hubCameraCredential = c: "camera-key-${c.name}";
  camdCredential = "camera-key";
  camdUnit = name: "vigil-camd@${name}";
  hubCredentials =
    lib.concatMap (
      u:
      [ "${pinCredential u}:${u.pinHashFile}" ]
      ++ lib.optional (u.duressPinHashFile != null) "${duressCredential u}:${u.duressPinHashFile}"
    ) cfg.users
    ++ map (c: "${hubCameraCredential c}:${c.keyFile}") camerasWithKeys;
  camerasWithKeys = lib.filter (c: c.keyFile != null) cfg.cameras;

  # The broker's files reach the bridge (and sensord, when it has Zigbee
  # sensors) through LoadCredential=, each under its own unit's
  # /run/credentials/: read by systemd as root, they may lie anywhere with
  # any owner and mode (the CA beside Mosquitto's files, the password
  # root's alone), and [mqtt] names the unit's private copy.
  mqttFiles = dropNulls {
    mqtt-ca = cfg.mqtt.caFile;
    mqtt-client-cert = cfg.mqtt.clientCertFile;
    mqtt-client-key = cfg.mqtt.clientKeyFile;
    mqtt-credentials = cfg.mqtt.credentialsFile;
  };
  mqttCredentials = lib.mapAttrsToList (id: file: "${id}:${file}") mqttFiles;
  mqttFilePath = unit: id: if mqttFiles ? ${id} then credentialPath unit id else null;

  # ---- TOML: the tables the Rust side reads (services/vigil-config/src/sections/)

  # A Zigbee sensor: `source` and `friendly_name` instead of the wiring.
  isZigbee = s: s.source == "zigbee2mqtt";
  zigbeeSensors = lib.filter isZigbee cfg.sensors;

  sensorToml =
    s:
    dropNulls (
      {
        inherit (s)
          name
          kind
          modes
          ;
        debounce_ms = s.debounceMs;
        supervision_secs = s.supervisionSecs;
        inherit (s) response;
        arm_after_close = s.armAfterClose;
        auto_bypass = s.autoBypass;
        double_knock = s.doubleKnock;
        trigger_on_fault = s.triggerOnFault;
      }
      // (
        if isZigbee s then
          {
            inherit (s) source;
            friendly_name = s.friendlyName;
          }
        else
          { inherit (s) pin pull active; }
      )
    );

  # [mqtt] as `unit` reads it: the broker's files in its credentials. Topics
  # left null keep the Rust defaults; `hub_credentials` is the bridge's
  # StateDirectory=, where the pairing goes.
  mqttToml =
    unit:
    dropNulls {
      inherit (cfg.mqtt) broker hub;
      ca_file = mqttFilePath unit "mqtt-ca";
      client_cert_file = mqttFilePath unit "mqtt-client-cert";
      client_key_file = mqttFilePath unit "mqtt-client-key";
      credentials_file = mqttFilePath unit "mqtt-credentials";
      insecure_plaintext = if cfg.mqtt.insecurePlaintext then true else null;
      base_topic = cfg.mqtt.baseTopic;
      discovery_prefix = cfg.mqtt.discoveryPrefix;
      zigbee2mqtt_topic = cfg.mqtt.zigbee2mqttTopic;
      hub_credentials = mqttHubCredentials;
      keypads =
        if cfg.mqtt.keypads == [ ] then
          null
        else
          map (k: {
            inherit (k) name;
            friendly_name = k.friendlyName;
          }) cfg.mqtt.keypads;
    };

  # docs/mqtt.md's broker ACL for the topics above (the Rust defaults where
  # they are null), as services.mosquitto's per-user `acl` lists: the
  # bridge (broker user `vigil`), Home Assistant and zigbee2mqtt.
  mqttAcl =
    let
      base = lib.defaultTo "vigil" cfg.mqtt.baseTopic;
      discovery = lib.defaultTo "homeassistant" cfg.mqtt.discoveryPrefix;
      # Home Assistant's own topics (its birth message) keep its prefix
      # even when the bridge publishes no discovery.
      ha = if discovery == "" then "homeassistant" else discovery;
      z2m = lib.defaultTo "zigbee2mqtt" cfg.mqtt.zigbee2mqttTopic;
    in
    {
      vigil = [
        "readwrite ${base}/#"
      ]
      ++ lib.optional (discovery != "") "readwrite ${discovery}/+/+/+/config"
      ++ [
        "read ${z2m}/#"
        "write ${z2m}/+/set"
      ];
      homeassistant = [
        "read ${base}/#"
        "read ${ha}/#"
        "write ${ha}/status"
        "write ${base}/+/alarm/set"
        "write ${base}/+/panic/set"
        "write ${base}/+/camera/+/snapshot/set"
      ];
      zigbee2mqtt = [ "readwrite ${z2m}/#" ];
    };

  recordingPort = portOf 7445 cfg.recording.listen;
  # Where a camera without `hub` dials: the loopback address and the port of
  # recording.listen (with the defaults, the Rust default 127.0.0.1:7445).
  localHub = "127.0.0.1:${toString recordingPort}";

  # One [[cameras]] entry; `keyPath` is where the reading unit finds the key
  # (its own credentials directory).
  cameraToml =
    keyPath: c:
    dropNulls {
      inherit (c)
        name
        source
        width
        height
        framerate
        encoder
        ;
      device = if c.source == "v4l2" then c.device else null;
      bitrate_kbps = c.bitrateKbps;
      keyframe_secs = c.keyframeSecs;
      hub = if c.hub != null then c.hub else localHub;
      discovery_port = if c.hub == "discover" then c.discoveryPort else null;
      key_file = if c.keyFile == null then null else keyPath c;
      # Motion on video: both keys, only when asked for.
      motion = if c.motion then true else null;
      motion_percent = if c.motion then c.motionPercent else null;
    };

  outputsToml = dropNulls {
    siren = if cfg.outputs.siren == null then null else { inherit (cfg.outputs.siren) pin active; };
    buzzer = if cfg.outputs.buzzer == null then null else { inherit (cfg.outputs.buzzer) pin active; };
  };

  knownTables = dropNulls {
    runtime = {
      runtime_dir = runtimeDir;
      state_dir = stateDir;
      # reportd's own directory: it runs as vigil-reportd.
      reports_dir = reportsDir;
    };
    gpio.backend = if cfg.simulatedGpio then "simulated" else "rppal";
    sensors = map sensorToml cfg.sensors;
    outputs = if outputsToml == { } then null else outputsToml;
    users = map (
      u:
      dropNulls {
        inherit (u) name role;
        pin_hash_file = credentialPath "vigil-hub" (pinCredential u);
        duress_pin_hash_file =
          if u.duressPinHashFile == null then null else credentialPath "vigil-hub" (duressCredential u);
      }
    ) cfg.users;
    cameras = map (cameraToml (c: credentialPath "vigil-hub" (hubCameraCredential c))) cfg.cameras;
    # The hub's camera server. Every key has a default equal to the Rust one
    # (nixos/eval/module-defaults.toml).
    recording = {
      inherit (cfg.recording) listen semaphore slots;
      ring_secs = cfg.recording.ringSecs;
      pre_roll_secs = cfg.recording.preRollSecs;
      post_capture_secs = cfg.recording.postCaptureSecs;
      offline_after_secs = cfg.recording.offlineAfterSecs;
      max_age_days = cfg.recording.maxAgeDays;
      min_free_megabytes = cfg.recording.minFreeMegabytes;
      # A string: an address, or "off" (the Rust side also takes "" for off).
      beacon = if cfg.recording.beacon == null then "off" else cfg.recording.beacon;
    };
    # The alert queue, as large as the sysctls allow.
    alerts = {
      depth = mqueue.msgMax;
      msg_size = mqueue.msgSizeMax;
      # alertd runs as vigil-alertd: the queue (read only) and hub.sock are
      # this group's.
      group = "vigil-alerts";
    };
    # The gRPC API: the port the firewall opens.
    grpc = {
      listen = cfg.grpc.listenAddress;
    }
    // lib.optionalAttrs (cfg.grpc.hostnames != [ ]) { inherit (cfg.grpc) hostnames; };
    # The event log's durability and retention.
    events = {
      sync_window_ms = cfg.events.syncWindowMs;
      max_age_days = cfg.events.maxAgeDays;
      max_megabytes = cfg.events.maxMegabytes;
    };
    # Each hook runs as vigil-hook in vigil-hook-<name>@.service, started
    # by systemd for each connection alertd makes to its socket.
    hooks = map (h: {
      inherit (h) name;
      socket = hookSocket h;
    }) cfg.hooks;
    telemetry = dropNulls {
      otlp_endpoint = cfg.otlpEndpoint;
      log_format = cfg.logFormat;
      log_filter = cfg.logFilter;
    };
  };

  # ---- TOML: [alarm] and [webhook], written only when an option is set.

  alarmModes = lib.filterAttrs (_: v: v != { }) (
    lib.mapAttrs (
      _: m:
      dropNulls {
        exit_delay_secs = m.exitDelaySecs;
        entry_delay_secs = m.entryDelaySecs;
        trigger_secs = m.triggerSecs;
      }
    ) cfg.alarm.modes
  );
  alarmTable = dropNulls {
    chime = cfg.alarm.chime;
    double_knock_secs = cfg.alarm.doubleKnockSecs;
    require_pin_to_arm = cfg.alarm.requirePinToArm;
    modes = if alarmModes == { } then null else alarmModes;
  };
  webhookTable = lib.optionalAttrs (cfg.webhook.url != null) (dropNulls {
    inherit (cfg.webhook) url format;
    min_priority = cfg.webhook.minPriority;
    secret_file =
      if cfg.webhook.secretFile == null then null else credentialPath "vigil-alertd" "webhook-secret";
  });

  readTables =
    lib.optionalAttrs (alarmTable != { }) { alarm = alarmTable; }
    // lib.optionalAttrs (webhookTable != { }) { webhook = webhookTable; };

  # ---- TOML: tables the Rust side does not read yet. Emitted only when their
  # options differ from the defaults, so a default configuration stays valid
  # under deny_unknown_fields.
  futureTables = {
    reports = {
      emit = cfg.reports.daily != true || cfg.reports.weekly != true || cfg.reports.time != "06:00";
      value = {
        inherit (cfg.reports) daily weekly time;
      };
    };
  };

  emittedFutureTables = lib.filterAttrs (_: t: t.emit) futureTables;

  # The settings with [mqtt]'s files in `mqttUnit`'s credentials.
  finalSettingsWith =
    mqttUnit:
    lib.recursiveUpdate (
      knownTables
      // readTables
      // lib.mapAttrs (_: t: t.value) emittedFutureTables
      // lib.optionalAttrs cfg.mqtt.enable { mqtt = mqttToml mqttUnit; }
    ) cfg.settings;
  # The shared file names sensord's copies: of the services that read it,
  # only sensord (with Zigbee sensors) opens [mqtt]'s files.
  finalSettings = finalSettingsWith "vigil-sensord";

  configFile = settingsFormat.generate "vigil.toml" finalSettings;

  # The bridge's file: the same, with [mqtt]'s files in its own credentials.
  mqttdSettings = finalSettingsWith "vigil-mqttd";
  mqttdConfigFile = settingsFormat.generate "vigil-mqttd.toml" mqttdSettings;

  localCameras = lib.filter (c: c.local) cfg.cameras;
  remoteCameras = lib.filter (c: !c.local) cfg.cameras;
  # Local cameras that find the hub by its beacon, and the UDP ports they
  # listen on.
  discoverCameras = lib.filter (c: c.hub == "discover") localCameras;
  discoveryPorts = lib.unique (map (c: c.discoveryPort) discoverCameras);

  # camd's file: the hub's, with [[cameras]] cut to its camera and the key
  # read from camd's own credentials. Without motion and motion_percent:
  # the hub detects motion, camd only captures, so turning motion on or
  # off does not restart camd (and camd's file has no camera sensor).
  camdSettings =
    cam:
    finalSettings
    // {
      cameras = [
        (removeAttrs (cameraToml (_: credentialPath (camdUnit cam.name) camdCredential) cam) [
          "motion"
          "motion_percent"
        ])
      ];
    };
  camdConfigFile = cam: settingsFormat.generate "vigil-camd-${cam.name}.toml" (camdSettings cam);

  grpcPort = portOf 7443 cfg.grpc.listenAddress;

  # The hub's gRPC API as a client on this machine reaches it: the address
  # it listens on, or for a wildcard the loopback address and its port (as
  # `vigilctl pair --here` stores it).
  localGrpc =
    let
      address = cfg.grpc.listenAddress;
      wildcard =
        builtins.match ".*:[0-9]+" address != null
        && lib.elem (hostOf address) [
          "::"
          "0.0.0.0"
          "0:0:0:0:0:0:0:0"
        ];
    in
    if wildcard then "127.0.0.1:${toString grpcPort}" else address;

  # What a SIGHUP does not apply (services/hub/src/lib.rs reloads sensors,
  # the alarm and users; services/sensord/src/lib.rs sensors, outputs and
  # [mqtt]): a change there restarts the unit instead (restartTriggers win
  # over reloadTriggers in switch-to-configuration). The hub ignores
  # [[hooks]], [webhook], [gpio] and [mqtt]. A hash keeps the unit file short.
  settingsHash = v: builtins.hashString "sha256" (builtins.toJSON v);
  hubRestartOn = settingsHash (
    removeAttrs finalSettings [
      "sensors"
      "alarm"
      "users"
      "hooks"
      "webhook"
      "gpio"
      "mqtt"
    ]
  );
  sensordRestartOn = settingsHash {
    inherit (finalSettings) runtime gpio telemetry;
  };
  # camd reads its camera, [runtime] and [telemetry]: a new sensor or user
  # does not interrupt the cameras.
  camdRestartOn =
    cam:
    settingsHash {
      inherit (finalSettings) runtime telemetry;
      inherit (camdSettings cam) cameras;
    };

  # The bridge reads [mqtt] and [telemetry]: a new sensor or user reaches it
  # through the hub's API, without a restart (which would blink its
  # availability).
  mqttdRestartOn = settingsHash {
    inherit (mqttdSettings) mqtt telemetry;
  };

  needsNetwork = cfg.otlpEndpoint != null;
  # sensord also hears its Zigbee sensors on the broker.
  sensordNeedsNetwork = needsNetwork || zigbeeSensors != [ ];

  # IPAddressDeny=any plus the allowed networks, for units that only talk to
  # the LAN. Empty when services.vigil.allowedNetworks is null.
  lanOnly = lib.optionalAttrs (cfg.allowedNetworks != null) {
    IPAddressDeny = "any";
    IPAddressAllow = cfg.allowedNetworks;
  };
  # The hub also sends the discovery beacon. IPAddressDeny= filters outgoing
  # packets by their destination, so the beacon's address (255.255.255.255
  # by default, in none of the LAN prefixes) must be allowed too, or the
  # send fails with EPERM. Incoming packets are filtered by their source,
  # so camd receives a beacon from any hub in allowedNetworks.
  hubLanOnly =
    lanOnly
    // lib.optionalAttrs (cfg.allowedNetworks != null && cfg.recording.beacon != null) {
      IPAddressAllow = lib.unique (cfg.allowedNetworks ++ [ (hostOf cfg.recording.beacon) ]);
    };

  # ---- systemd hardening shared by every unit.
  hardening = {
    # Every unit names its User= and Group= (one per trust domain, see the
    # top of this file) and what it may write.
    UMask = "0007";

    NoNewPrivileges = true;
    PrivateMounts = true;
    CapabilityBoundingSet = "";
    AmbientCapabilities = "";

    # ipc-channel puts its rendezvous sockets in $TMPDIR, which is set to
    # /run/vigil; the private /tmp is only a fallback that nothing shares.
    PrivateTmp = true;
    ProtectSystem = "strict";
    ProtectHome = true;
    ProtectKernelTunables = true;
    ProtectKernelModules = true;
    ProtectKernelLogs = true;
    ProtectControlGroups = true;
    ProtectClock = true;
    ProtectHostname = true;
    ProtectProc = "invisible";
    RestrictAddressFamilies = [
      "AF_UNIX"
      "AF_INET"
      "AF_INET6"
      "AF_NETLINK"
    ];
    RestrictNamespaces = true;
    RestrictRealtime = true;
    RestrictSUIDSGID = true;
    LockPersonality = true;
    MemoryDenyWriteExecute = true;
    SystemCallArchitectures = "native";
    SystemCallFilter = [
      "@system-service"
      "~@privileged"
      "~@resources"
    ];
    SystemCallErrorNumber = "EPERM";
    DevicePolicy = "closed";
    # NOT set, on purpose:
    #  PrivateIPC=   would give the unit its own IPC namespace: its own POSIX
    #                message queues (/dev/mqueue) and SysV IPC, so hub and
    #                alertd would not see the same alert queue.
    #  RemoveIPC=    would delete the queue, /dev/shm/sem.vigil-recording and
    #                the other POSIX IPC objects of user vigil whenever the
    #                hub or sensord stops; they must survive their restarts.
    #  PrivateUsers= user namespaces per unit break the gpio/video groups, the
    #                shared uid that signals (the doorbell) rely on and
    #                the groups that share the queue, hub.sock and the log.
    # /dev/shm (named semaphores) and /dev/mqueue stay the host's, shared by
    # every unit: ProtectSystem=strict leaves /dev alone (it is an API file
    # system), and PrivateDevices=true bind-mounts both into its private /dev.

    Restart = "always";
    # 78 (EX_CONFIG): the config, or a file it names (a PIN hash, a camera
    # key, the webhook secret), cannot be used, or camd's camera is unknown;
    # restarting cannot fix it, and a new config restarts the unit anyway.
    # Every other failure exits 1 and is restarted with back-off, so the
    # panel comes back by itself once the cause is gone (ARCHITECTURE.md,
    # "Exit codes"; each error type's variants name their code).
    RestartPreventExitStatus = "78";
    RestartSec = "1s";
    RestartSteps = 5;
    RestartMaxDelaySec = "30s";
    TimeoutStopSec = "20s";
  };

  # The restart policy in `hardening`, which a hook's per-connection unit
  # leaves out.
  restartSettings = [
    "Restart"
    "RestartPreventExitStatus"
    "RestartSec"
    "RestartSteps"
    "RestartMaxDelaySec"
  ];

  # hub and sensord reload their config on SIGHUP; camd, alertd and reportd
  # have no SIGHUP handler (it would kill them), so a new config restarts them.
  mkService =
    {
      description,
      exec,
      args ? [
        "--config"
        configPath
      ],
      serviceConfig ? { },
      environment ? { },
      reloadable ? false,
      # What reloads (SIGHUP) or restarts the unit when it changes; a new
      # package or a changed unit file always restarts it.
      reloadOn ? [ ],
      restartOn ? [ ],
      after ? [ ],
      wants ? [ ],
    }:
    {
      inherit description wants;
      documentation = [ "https://github.com/vigil-home/vigil/blob/main/docs/nixos.md" ];
      wantedBy = [ "vigil.target" ];
      partOf = [ "vigil.target" ];
      after = [
        "network.target"
        "systemd-tmpfiles-setup.service"
      ]
      ++ after;
      # Never give up on an alarm panel: restart forever, with back-off.
      startLimitIntervalSec = 0;
      reloadTriggers = reloadOn;
      restartTriggers = restartOn;
      environment = {
        TMPDIR = runtimeDir;
        NO_COLOR = "1"; # the journal adds its own colours
      }
      // environment;
      serviceConfig =
        hardening
        // {
          Type = "exec";
          ExecStart = lib.escapeShellArgs ([ "${cfg.package}/bin/${exec}" ] ++ args);
        }
        // lib.optionalAttrs reloadable {
          # SIGTERM drains and exits 0, SIGHUP reloads the config.
          ExecReload = "${pkgs.coreutils}/bin/kill -HUP $MAINPID";
        }
        // serviceConfig;
    };

  # GStreamer (hub: clips and snapshots; camd: capture and encoding) keeps its
  # plugin registry in $XDG_CACHE_HOME/gstreamer-1.0 instead of $HOME, which
  # the vigil user does not have. The plugins themselves are found through
  # GST_PLUGIN_SYSTEM_PATH_1_0, set by the package's wrappers.
  # One cache per user: systemd gives a CacheDirectory= to its unit's user.
  gstreamerCache = name: {
    environment.XDG_CACHE_HOME = "/var/cache/${name}";
    serviceConfig = {
      CacheDirectory = name;
      CacheDirectoryMode = "0750";
    };
  };

  gpioDevices = [
    # rppal: /dev/gpiomem on the Pi 4 (vendor kernel), /dev/gpiomem0 on the
    # Pi 5 (RP1), and the character devices for the gpiochip interface.
    "/dev/gpiomem rw"
    "/dev/gpiomem0 rw"
    "char-gpiochip rw"
  ];

  videoDevices = [
    "char-video4linux rw" # /dev/video*, /dev/v4l-subdev*
    "char-media rw" # /dev/media* (libcamera)
    "char-dma_heap rw" # /dev/dma_heap/* (libcamera buffers)
    "char-drm rw" # /dev/dri/* (hardware encoders on some boards)
  ];
in
{
  imports = [
    # The event log's retention moved to [events] when the Rust side began
    # reading it (the [event_log] table these options wrote never was).
    (lib.mkRenamedOptionModule
      [ "services" "vigil" "eventLog" "retention" "maxAgeDays" ]
      [ "services" "vigil" "events" "maxAgeDays" ]
    )
    (lib.mkRemovedOptionModule [
      "services"
      "vigil"
      "eventLog"
      "retention"
      "maxBytes"
    ] "Use services.vigil.events.maxMegabytes (in MiB).")
  ];

  options.services.vigil = {
    enable = mkEnableOption "Vigil, the home-security appliance";

    package = mkOption {
      type = types.package;
      default = pkgs.callPackage ../package.nix { };
      defaultText = literalExpression "pkgs.callPackage ./nixos/package.nix { }";
      description = "The Vigil package (all binaries of the workspace).";
    };

    hub.enable = mkOption {
      type = types.bool;
      default = true;
      description = "Run vigil-hub on this machine. False on a camera-only node.";
    };
    sensord.enable = mkOption {
      type = types.bool;
      default = true;
      description = "Run vigil-sensord (GPIO) on this machine.";
    };
    alertd = {
      enable = mkOption {
        type = types.bool;
        default = true;
        description = "Run vigil-alertd (hooks, webhooks) on this machine.";
      };
      allowJitHooks = mkOption {
        type = types.bool;
        default = false;
        description = ''
          Turn off MemoryDenyWriteExecute= for the hooks' units
          (vigil-hook-<name>@.service). Needed only for hooks written in a JIT-compiled language
          (Node.js, LuaJIT, Java).
        '';
      };
      credentials = mkOption {
        type = types.attrsOf secretPath;
        default = { };
        example = {
          ntfy-token = "/var/lib/vigil-secrets/ntfy-token";
        };
        description = ''
          Secrets for hooks, loaded with LoadCredential=. A hook finds
          `<name>` in the directory named by `$CREDENTIALS_DIRECTORY`.
        '';
      };
    };
    reportd.enable = mkOption {
      type = types.bool;
      default = true;
      description = ''
        Run vigil-reportd on this machine: it indexes the hub's event log
        into /var/lib/vigil-reportd/reports.db and writes daily and weekly
        reports to /var/lib/vigil-reportd/reports/. Needs the hub on the same machine.
      '';
    };

    simulatedGpio = mkOption {
      type = types.bool;
      default = false;
      description = ''
        Use the simulated GPIO backend instead of rppal (VMs, development).
        Sensors are then driven with `vigil-sensord sim set <sensor> open|closed`
        through /run/vigil/sim-gpio.sock.
      '';
    };

    sensors = mkOption {
      type = types.listOf (types.submodule sensorModule);
      default = [ ];
      description = "Sensors wired to GPIO pins, in table-slot order (at most 64).";
    };

    outputs = {
      siren = mkOption {
        type = types.nullOr (types.submodule outputModule);
        default = null;
        example = {
          pin = 23;
        };
        description = "Siren relay.";
      };
      buzzer = mkOption {
        type = types.nullOr (types.submodule outputModule);
        default = null;
        example = {
          pin = 24;
        };
        description = "Buzzer for entry/exit delays and chime.";
      };
    };

    cameras = mkOption {
      type = types.listOf (types.submodule cameraModule);
      default = [ ];
      description = ''
        Cameras ([[cameras]]). On the hub: every camera, so that it checks
        their keys and reports them offline; those with `local = true` are
        also captured here. On a camera node: the cameras it captures, each
        with `hub` set (the hub's address, or `"discover"`).
      '';
    };

    users = mkOption {
      type = types.listOf (types.submodule userModule);
      default = [ ];
      description = "Users who may arm and disarm, each with a PIN hash file.";
    };

    hooks = mkOption {
      type = types.listOf (types.submodule hookModule);
      default = [ ];
      description = "Notification hooks: programs that read alerts as JSON lines on stdin.";
    };

    webhook = {
      url = mkOption {
        type = types.nullOr types.str;
        default = null;
        example = "https://example.org/vigil";
        description = "Webhook for alerts: alertd POSTs each alert here (emits [webhook]).";
      };
      format = mkOption {
        type = types.enum [
          "json"
          "ntfy"
        ];
        default = "json";
        description = "json: the alert as a JSON object; ntfy: the message as the body, title, priority and tags as ntfy headers.";
      };
      secretFile = mkOption {
        type = types.nullOr secretPath;
        default = null;
        description = "HMAC secret for the webhook, loaded into vigil-alertd with LoadCredential=.";
      };
      minPriority = mkOption {
        type = types.enum [
          "alarm"
          "tamper"
          "fault"
          "info"
        ];
        default = "info";
        description = "Lowest alert priority sent to the webhook (`min_priority`).";
      };
    };

    alarm = {
      modes = lib.genAttrs [ "home" "away" "night" "vacation" "custom" ] (
        mode:
        mkOption {
          type = types.submodule modeTimingModule;
          default = { };
          description = "Exit delay, entry delay and siren time when armed ${mode}; unset keeps the Rust defaults.";
        }
      );
      chime = mkOption {
        type = types.nullOr types.bool;
        default = null;
        description = "Beep the buzzer when a door or window opens while disarmed (Rust default: true).";
      };
      doubleKnockSecs = mkOption {
        type = types.nullOr (types.ints.between 1 3600);
        default = null;
        description = "Window in which two sensors of a double-knock group must activate, 1 to 3600 s (Rust default: 30).";
      };
      requirePinToArm = mkOption {
        type = types.nullOr types.bool;
        default = null;
        description = "Whether arming needs a PIN; disarming always does (Rust default: false).";
      };
    };

    grpc = {
      listenAddress = mkOption {
        type = types.str;
        default = "[::]:7443";
        example = "192.168.1.10:7443";
        description = "Address and port of the gRPC API ([grpc] listen). The firewall opens its port.";
      };
      hostnames = mkOption {
        type = types.listOf types.str;
        default = [ ];
        example = [
          "vigil-pi4"
          "vigil-pi4.local"
          "192.168.1.10"
        ];
        description = ''
          Extra names and addresses in the hub's TLS certificate, besides
          vigil-hub, localhost and the loopback addresses ([grpc] hostnames).
        '';
      };
    };

    # [recording]: the hub's camera server and recorder. Every default is the
    # Rust one (services/vigil-config/src/limits.rs); the ranges are its too.
    recording = {
      listen = mkOption {
        type = socketAddress;
        default = "[::]:7445";
        example = "192.168.1.10:7445";
        description = ''
          Where the hub accepts cameras (`listen`): TCP for the camera link and
          UDP on the same port for their signed heartbeats. The firewall opens
          both when a camera has `local = false`. The hub listens only when
          {option}`services.vigil.cameras` is not empty.
        '';
      };
      ringSecs = mkOption {
        type = types.ints.between 1 60;
        default = 30;
        description = "Seconds of video the hub keeps in memory per camera (`ring_secs`).";
      };
      preRollSecs = mkOption {
        type = types.ints.between 0 60;
        default = 10;
        description = "Seconds before the trigger that a clip starts with (`pre_roll_secs`), at most `ringSecs`.";
      };
      postCaptureSecs = mkOption {
        type = types.ints.between 1 600;
        default = 20;
        description = "Seconds a clip goes on after the trigger (`post_capture_secs`).";
      };
      offlineAfterSecs = mkOption {
        type = types.ints.between 1 600;
        default = 10;
        description = "No frame and no heartbeat for this long: the camera is offline, an event and a fault alert (`offline_after_secs`).";
      };
      maxAgeDays = mkOption {
        type = types.ints.between 0 36500;
        default = 30;
        description = "Clips older than this are removed (`max_age_days`, at most 36500; 0 keeps them).";
      };
      minFreeMegabytes = mkOption {
        type = types.ints.between 0 16777216;
        default = 500;
        description = "The oldest clips go while the state directory's disk has less free space than this (`min_free_megabytes`, at most 16777216: 16 TiB).";
      };
      slots = mkOption {
        type = types.ints.between 1 16;
        default = 2;
        description = "How many clips may be written at once (`slots`), counted by a named POSIX semaphore.";
      };
      semaphore = mkOption {
        type = types.strMatching "/[^/]{1,250}";
        default = "/vigil-recording";
        description = ''
          Name of that semaphore (`semaphore`): `/dev/shm/sem.<name>`, one
          per installation (the hub re-creates it at start).
        '';
      };
      beacon = mkOption {
        type = types.nullOr socketAddress;
        default = "255.255.255.255:7446";
        example = "192.168.1.255:7446";
        description = ''
          Where the hub broadcasts its discovery beacon, `VIGIL-HUB/1 <camera
          port>`, every 2 s (`beacon`), for cameras with `hub = "discover"`:
          an `ip:port` (a broadcast address and the cameras'
          `discoveryPort`). null: no beacon (written as `"off"`). Sent only
          when {option}`services.vigil.cameras` is not empty. The hub's
          `IPAddressAllow=` gets this address, as
          {option}`services.vigil.allowedNetworks` holds no broadcast
          address; the hub opens no port for it (it only sends).
        '';
      };
    };

    # [events]: the event log's durability and retention.
    events = {
      syncWindowMs = mkOption {
        type = types.ints.between 1 5000;
        default = 100;
        description = ''
          The longest an ordinary event waits to be synced to disk
          (`sync_window_ms`): what a power cut can lose. Alarm-class events
          are synced before they are acknowledged.
        '';
      };
      maxAgeDays = mkOption {
        type = types.ints.between 0 36500;
        default = 365;
        description = "Event-log segments older than this go (`max_age_days`, at most 36500; 0 keeps them), never before reportd has indexed them.";
      };
      maxMegabytes = mkOption {
        type = types.ints.between 0 16777216;
        default = 1024;
        description = "The oldest segments go while the log is larger (`max_megabytes`, at most 16777216; 0: no limit), never before reportd has indexed them.";
      };
    };

    reports = {
      daily = mkOption {
        type = types.bool;
        default = true;
        description = "Write a daily report.";
      };
      weekly = mkOption {
        type = types.bool;
        default = true;
        description = "Write a weekly report.";
      };
      time = mkOption {
        type = types.strMatching "[0-2][0-9]:[0-5][0-9]";
        default = "06:00";
        description = "Local time at which reports are written. Non-defaults emit [reports] (not read yet).";
      };
    };

    # [mqtt]: the broker that the bridge (vigil-mqttd) and sensord's Zigbee
    # sensors use, and the bridge's topics (docs/mqtt.md).
    mqtt = {
      enable = mkEnableOption ''
        the MQTT bridge, `vigil-mqttd.service`, and the `[mqtt]` table: the
        broker that the bridge and sensord's Zigbee sensors
        (`sensors.*.source = "zigbee2mqtt"`) use. The bridge is a paired
        gRPC client of the hub, paired once by hand (docs/nixos.md, "MQTT")'';
      broker = mkOption {
        type = types.nullOr (types.strMatching "(\\[[0-9a-fA-F:.]+]|[A-Za-z0-9._-]+):[0-9]{1,5}");
        default = null;
        example = "mqtt.lan:8883";
        description = ''
          The broker's `host:port` (`broker`; an IPv6 address in brackets).
          The host must be a name in the broker's TLS certificate (or an
          address in it). Required with {option}`services.vigil.mqtt.enable`.
        '';
      };
      caFile = mkOption {
        type = types.nullOr types.path;
        default = null;
        example = "/var/lib/mosquitto/tls/ca.pem";
        description = ''
          The CA that signs the broker's certificate (`ca_file`). Loaded with
          LoadCredential= (as `mqtt-ca`) into the bridge and, with Zigbee
          sensors, sensord, so it may be a file only root reads; not a
          secret, so a path in the Nix store is fine too. Required unless
          {option}`services.vigil.mqtt.insecurePlaintext`.
        '';
      };
      clientCertFile = mkOption {
        type = types.nullOr types.path;
        default = null;
        description = ''
          TLS client authentication: the certificate (`client_cert_file`),
          with {option}`services.vigil.mqtt.clientKeyFile` (both or neither).
          Loaded like the CA (`mqtt-client-cert`).
        '';
      };
      clientKeyFile = mkOption {
        type = types.nullOr secretPath;
        default = null;
        example = "/var/lib/vigil-secrets/mqtt-client-key";
        description = ''
          The client certificate's key (`client_key_file`). Never in the Nix
          store: systemd reads it with LoadCredential= (`mqtt-client-key`) and
          hands the bridge (and sensord, with Zigbee sensors) a private copy.
        '';
      };
      credentialsFile = mkOption {
        type = types.nullOr secretPath;
        default = null;
        example = "/var/lib/vigil-secrets/mqtt-credentials";
        description = ''
          A file of one line, `username:password`, for the broker
          (`credentials_file`; the username is the broker user, `vigil` in
          docs/mqtt.md's ACL). Never in the Nix store: loaded with
          LoadCredential= (`mqtt-credentials`) into the bridge and, with
          Zigbee sensors, sensord. null: no username.
        '';
      };
      insecurePlaintext = mkOption {
        type = types.bool;
        default = false;
        description = ''
          No TLS (`insecure_plaintext = true`): only for a broker on this
          machine, reached over the loopback address. Written only when true.
        '';
      };
      baseTopic = mkOption {
        type = types.nullOr topicType;
        default = null;
        example = "vigil";
        description = "The bridge's topics are `<baseTopic>/<hub id>/...` (`base_topic`); null keeps the Rust default, `vigil`.";
      };
      discoveryPrefix = mkOption {
        type = types.nullOr (types.either (types.enum [ "" ]) topicType);
        default = null;
        example = "homeassistant";
        description = "Home Assistant's discovery prefix (`discovery_prefix`); `\"\"`: no discovery; null keeps the Rust default, `homeassistant`.";
      };
      zigbee2mqttTopic = mkOption {
        type = types.nullOr topicType;
        default = null;
        example = "zigbee2mqtt";
        description = "zigbee2mqtt's `base_topic` (`zigbee2mqtt_topic`), for Zigbee sensors and keypads; null keeps the Rust default, `zigbee2mqtt`.";
      };
      hub = mkOption {
        type = types.nullOr (types.strMatching ".+:[0-9]{1,5}");
        default = if cfg.hub.enable then localGrpc else null;
        defaultText = lib.literalMD ''
          with the hub on this machine, {option}`services.vigil.grpc.listenAddress`,
          or for a wildcard (`"[::]:7443"`) `127.0.0.1` and its port; else null'';
        example = "vigil-pi4:7443";
        description = ''
          The hub's gRPC address as the bridge dials it (`hub`); null: the
          address stored when the bridge was paired. The hub's certificate is
          checked by its CA, not by this name, so any name or address of the
          hub does.
        '';
      };
      keypads = mkOption {
        type = types.listOf (types.submodule keypadModule);
        default = [ ];
        example = [
          {
            name = "hall-keypad";
            friendlyName = "hall_keypad";
          }
        ];
        description = "Zigbee keypads (through zigbee2mqtt) that arm and disarm through the bridge (`[[mqtt.keypads]]`).";
      };
      brokerAcl = mkOption {
        type = types.attrsOf (types.listOf types.str);
        readOnly = true;
        default = mqttAcl;
        defaultText = lib.literalMD "docs/mqtt.md's ACL for the topics set here";
        example = {
          vigil = [
            "readwrite vigil/#"
            "readwrite homeassistant/+/+/+/config"
            "read zigbee2mqtt/#"
            "write zigbee2mqtt/+/set"
          ];
        };
        description = ''
          Read only: docs/mqtt.md's broker ACL for the topics above, per
          broker user (`vigil`, the bridge and sensord; `homeassistant`;
          `zigbee2mqtt`), in the form of
          `services.mosquitto.listeners.*.users.<name>.acl` (the Pi
          configuration's local broker uses it).
        '';
      };
    };

    otlpEndpoint = mkOption {
      type = types.nullOr types.str;
      default = null;
      example = "http://collector:4317";
      description = "OpenTelemetry collector. When null, sensord and reportd get no network at all.";
    };
    logFormat = mkOption {
      type = types.enum [
        "text"
        "json"
      ];
      default = "text";
      description = "Log format on stderr (the journal).";
    };
    logFilter = mkOption {
      type = types.str;
      default = "info";
      example = "info,vigil_hub=debug";
      description = "tracing-subscriber EnvFilter directive.";
    };

    allowedNetworks = mkOption {
      type = types.nullOr (types.listOf types.str);
      default = [
        "localhost"
        "link-local"
        "10.0.0.0/8"
        "172.16.0.0/12"
        "192.168.0.0/16"
        "100.64.0.0/10" # CGNAT, also Tailscale
        "fc00::/7"
      ];
      description = ''
        IPAddressAllow= for vigil-hub, vigil-camd@* (and, with an OTLP
        endpoint, sensord and reportd), with IPAddressDeny=any: they talk only
        to the LAN. Set to null to lift the restriction, e.g. to reach the hub
        from the internet without a VPN. vigil-alertd is never restricted, as
        webhooks and hooks may need the internet.
      '';
    };

    openFirewall = mkOption {
      type = types.bool;
      default = true;
      description = ''
        Open the gRPC port (TCP) on the hub and, when a camera has
        `local = false`, the camera port of
        {option}`services.vigil.recording.listen` (TCP and UDP). On a
        node capturing a camera with `hub = "discover"`, its
        `discoveryPort` (UDP), for the hub's beacon; otherwise camera nodes
        open nothing: camd is the client.
      '';
    };

    settings = mkOption {
      type = settingsFormat.type;
      default = { };
      example = {
        telemetry.log_filter = "debug";
      };
      description = ''
        Escape hatch: merged (recursively) over the generated TOML. Anything
        the Rust side does not know makes every service refuse the file.
      '';
    };

    configFile = mkOption {
      type = types.path;
      readOnly = true;
      default = configFile;
      defaultText = literalExpression "generated from the options";
      description = "The generated /etc/vigil/vigil.toml (read only).";
    };
  };

  config = mkIf cfg.enable (mkMerge [
    {
      assertions =
        let
          sensorNames = map (s: s.name) cfg.sensors;
          # Motion on video: the hub adds "<camera>-motion" to its sensors.
          motionSensorOf = c: "${c.name}-motion";
          motionCameras = lib.filter (c: c.motion) cfg.cameras;
          motionClashes = lib.filter (c: lib.elem (motionSensorOf c) sensorNames) motionCameras;
          motionTooLong = lib.filter (c: lib.stringLength (motionSensorOf c) > 31) motionCameras;
          pins =
            lib.filter (p: p != null) (map (s: s.pin) cfg.sensors)
            ++ lib.optional (cfg.outputs.siren != null) cfg.outputs.siren.pin
            ++ lib.optional (cfg.outputs.buzzer != null) cfg.outputs.buzzer.pin;
          unique = l: lib.length (lib.unique l) == lib.length l;
          bad24h = lib.filter (s: lib.elem s.kind twentyFourHourKinds && s.modes != null) cfg.sensors;
          storePaths = lib.filter (lib.hasPrefix builtins.storeDir) (
            lib.concatMap (u: [ u.pinHashFile ] ++ lib.optional (u.duressPinHashFile != null) u.duressPinHashFile) cfg.users
            ++ lib.attrValues cfg.alertd.credentials
            ++ lib.optional (cfg.webhook.secretFile != null) cfg.webhook.secretFile
            ++ map (c: c.keyFile) camerasWithKeys
            ++ lib.optionals cfg.mqtt.enable (
              lib.filter (f: f != null) [
                cfg.mqtt.clientKeyFile
                cfg.mqtt.credentialsFile
              ]
            )
          );
          keyless = lib.filter (c: c.keyFile == null) cfg.cameras;
          hubless = lib.filter (c: c.hub == null) localCameras;
          # A camera on the hub's own machine that waits for a beacon the
          # hub does not send (or sends to another port).
          unheard = lib.filter (
            c: cfg.recording.beacon == null || portOf 7446 cfg.recording.beacon != c.discoveryPort
          ) discoverCameras;
          # Zigbee sensors: no wiring, a friendly name; wired ones: a pin.
          gpioSensors = lib.filter (s: !(isZigbee s)) cfg.sensors;
          unwired = lib.filter (s: s.pin == null) gpioSensors;
          misnamed = lib.filter (s: s.friendlyName != null) gpioSensors;
          zigbeeWired = lib.filter (s: s.pin != null || s.wiringSet != [ ]) zigbeeSensors;
          zigbeeUnnamed = lib.filter (s: s.friendlyName == null) zigbeeSensors;
          names = l: toString (map (s: s.name) l);
        in
        [
          {
            assertion = unique sensorNames;
            message = "services.vigil.sensors: every sensor needs its own name.";
          }
          {
            assertion = unwired == [ ];
            message = "services.vigil.sensors: ${names unwired} need `pin` (a GPIO sensor), or `source = \"zigbee2mqtt\"` and `friendlyName`.";
          }
          {
            assertion = misnamed == [ ];
            message = "services.vigil.sensors: ${names misnamed} are GPIO sensors: remove `friendlyName`, or set `source = \"zigbee2mqtt\"`.";
          }
          {
            assertion = zigbeeWired == [ ];
            message = "services.vigil.sensors: ${names zigbeeWired} are Zigbee sensors (source = \"zigbee2mqtt\"): remove `pin`, `pull` and `active`.";
          }
          {
            assertion = zigbeeUnnamed == [ ];
            message = "services.vigil.sensors: ${names zigbeeUnnamed} need `friendlyName`, the device's name in zigbee2mqtt.";
          }
          {
            assertion = unique (lib.filter (n: n != null) (map (s: s.friendlyName) zigbeeSensors));
            message = "services.vigil.sensors: two Zigbee sensors are one device (the same `friendlyName`).";
          }
          {
            assertion = zigbeeSensors == [ ] || cfg.mqtt.enable;
            message = "services.vigil.sensors: ${names zigbeeSensors} are heard through the broker: set services.vigil.mqtt.enable and services.vigil.mqtt.broker.";
          }
          {
            assertion = !cfg.mqtt.enable || cfg.mqtt.broker != null;
            message = "services.vigil.mqtt: set `broker`, the broker's \"host:port\" (like \"mqtt.lan:8883\").";
          }
          {
            assertion = !cfg.mqtt.enable || cfg.mqtt.caFile != null || cfg.mqtt.insecurePlaintext;
            message = "services.vigil.mqtt: set `caFile`, the CA of the broker's TLS certificate (or, for a broker on this machine only, `insecurePlaintext = true`).";
          }
          {
            assertion = !cfg.mqtt.enable || (cfg.mqtt.clientCertFile == null) == (cfg.mqtt.clientKeyFile == null);
            message = "services.vigil.mqtt: a client certificate needs its key and a key its certificate: set both `clientCertFile` and `clientKeyFile`, or neither.";
          }
          {
            assertion = unique pins;
            message = "services.vigil: every sensor and output needs its own GPIO pin (${toString pins}).";
          }
          {
            assertion = bad24h == [ ];
            message = "services.vigil.sensors: ${toString (map (s: s.name) bad24h)} are 24-hour zones; remove `modes`.";
          }
          {
            # The hub's sensor table holds at most 64 slots, the cameras'
            # motion sensors included.
            assertion = lib.length cfg.sensors + lib.length motionCameras <= 64;
            message = "services.vigil.sensors: at most 64 sensors, counting one motion sensor per camera with `motion = true` (${toString (lib.length cfg.sensors)} + ${toString (lib.length motionCameras)}).";
          }
          {
            assertion = motionClashes == [ ];
            message = "services.vigil.cameras: with `motion = true` the hub adds a motion sensor named <camera>-motion, and ${toString (map motionSensorOf motionClashes)} already name a configured sensor: rename the sensor or the camera.";
          }
          {
            assertion = motionTooLong == [ ];
            message = "services.vigil.cameras: with `motion = true` the hub adds a motion sensor named <camera>-motion, at most 31 characters: ${toString (map motionSensorOf motionTooLong)} is too long (camera names of at most 24 characters).";
          }
          {
            assertion = unique (map (c: c.name) cfg.cameras);
            message = "services.vigil.cameras: every camera needs its own name.";
          }
          {
            assertion = unique (map (u: u.name) cfg.users);
            message = "services.vigil.users: every user needs its own name.";
          }
          {
            assertion = unique (map (h: h.name) cfg.hooks);
            message = "services.vigil.hooks: every hook needs its own name.";
          }
          {
            assertion = storePaths == [ ];
            message = "services.vigil: secrets must not live in the Nix store: ${toString storePaths}";
          }
          {
            assertion = lib.all (c: c.device == null || c.source == "v4l2") cfg.cameras;
            message = "services.vigil.cameras: `device` only applies to source = \"v4l2\".";
          }
          {
            assertion = keyless == [ ];
            message = "services.vigil.cameras: ${toString (map (c: c.name) keyless)} need `keyFile`, the secret shared by the hub and the camera (docs/nixos.md, adding a camera node).";
          }
          {
            assertion = cfg.hub.enable || hubless == [ ];
            message = "services.vigil.cameras: ${toString (map (c: c.name) hubless)} run on a node without the hub: set `hub` to the hub's \"host:port\" (its recording.listen port, 7445 by default), or to \"discover\" to find it by its beacon.";
          }
          {
            assertion = !cfg.hub.enable || unheard == [ ];
            message = "services.vigil.cameras: ${toString (map (c: c.name) unheard)} use hub = \"discover\" on the hub's machine, which sends no beacon to their discoveryPort: set recording.beacon to a broadcast address and that port, or leave `hub` unset (the loopback address).";
          }
          {
            assertion = cfg.recording.preRollSecs <= cfg.recording.ringSecs;
            message = "services.vigil.recording: preRollSecs (${toString cfg.recording.preRollSecs}) must not exceed ringSecs (${toString cfg.recording.ringSecs}).";
          }
          {
            assertion =
              (config.boot.kernel.sysctl."fs.mqueue.msg_max" or mqueue.msgMax) >= mqueue.msgMax
              && (config.boot.kernel.sysctl."fs.mqueue.msgsize_max" or mqueue.msgSizeMax) >= mqueue.msgSizeMax;
            message = "services.vigil: the alert queue needs fs.mqueue.msg_max >= ${toString mqueue.msgMax} and fs.mqueue.msgsize_max >= ${toString mqueue.msgSizeMax}.";
          }
        ];

      warnings = lib.mapAttrsToList (
        name: _:
        "services.vigil: the [${name}] table is emitted but vigil ${cfg.package.version or ""} does not read it yet; every service will refuse the config until it does."
      ) emittedFutureTables;

      # One uid per trust domain; the groups are what they share
      # (ARCHITECTURE.md, "Users and groups").
      users.users = lib.mapAttrs
        (name: u: {
          isSystemUser = true;
          group = name;
          inherit (u) description extraGroups;
        })
        {
          # To give alertd the queue and hub.sock; to read reportd's index.
          vigil = {
            description = "Vigil hub and sensor daemon";
            extraGroups = [
              "vigil-alerts"
              "vigil-reportd"
            ];
          };
          vigil-alertd = {
            description = "Vigil alert daemon";
            extraGroups = [ "vigil-alerts" ];
          };
          vigil-hook = {
            description = "Vigil hook programs";
            extraGroups = [ ];
          };
          vigil-reportd = {
            description = "Vigil report daemon";
            extraGroups = [ "vigil-log" ];
          };
          vigil-camd = {
            description = "Vigil camera daemon";
            extraGroups = [ ];
          };
        };
      users.groups = {
        vigil = { };
        vigil-alertd = { };
        vigil-hook = { };
        vigil-reportd = { };
        vigil-camd = { };
        # Reads the alert queue (0640) and joins hub.sock, as alertd only.
        vigil-alerts = { };
        # Reads the event log (/var/lib/vigil/events, 2750; segments 0640).
        vigil-log = { };
        # Members may write commands to /run/vigil/control (`echo "arm away" > ...`).
        vigil-control = { };
      };

      environment.etc."vigil/vigil.toml".source = configFile;
      environment.systemPackages = [ cfg.package ];

      # The alert queue holds up to 256 alerts of up to 8 KiB; Linux allows a
      # non-root process 10 messages per queue by default.
      boot.kernel.sysctl = {
        "fs.mqueue.msg_max" = lib.mkDefault mqueue.msgMax;
        "fs.mqueue.msgsize_max" = lib.mkDefault mqueue.msgSizeMax;
      };

      systemd.tmpfiles.rules = [
        # Entered by every unit's user (alertd reaches hub.sock, FIFO writers
        # the FIFO), listed only by vigil; each entry has its own mode.
        "d ${runtimeDir} 0711 vigil vigil - -"
        "p ${runtimeDir}/control 0620 vigil vigil-control - -"
        # The hub's state, entered by the event log's readers; the log
        # itself is theirs to read (setgid: segments get the group).
        "d ${stateDir} 0710 vigil vigil-log - -"
        "d ${stateDir}/events 2750 vigil vigil-log - -"
        # Segments of an older installation (group vigil, maybe 0660).
        "z ${stateDir}/events/*.vlog 0640 vigil vigil-log - -"
      ];

      systemd.targets.vigil = {
        description = "Vigil home-security services";
        wantedBy = [ "multi-user.target" ];
      };
    }

    (mkIf cfg.hub.enable (mkMerge [
      {
        systemd.services.vigil-hub = mkService {
          description = "Vigil hub (alarm, gRPC API, camera server, event log)";
          exec = "vigil-hub";
          reloadable = true;
          reloadOn = [ configFile ];
          restartOn = [ hubRestartOn ];
          inherit (gstreamerCache "vigil") environment;
          serviceConfig =
            hubLanOnly
            // (gstreamerCache "vigil").serviceConfig
            // {
              User = "vigil";
              Group = "vigil";
              # Its runtime and state directories (made by tmpfiles, above,
              # with the groups that share them).
              ReadWritePaths = [
                runtimeDir
                stateDir
              ];
              PrivateDevices = true;
              ProcSubset = "pid";
              # PIN hashes, and every camera's key (local or remote).
              LoadCredential = hubCredentials;
              LimitMSGQUEUE = mqueue.limitBytes;
              # The peer-facing listeners' caps hold at most 288 descriptors
              # (gRPC 64 handshaking + 32 unpaired + 128 paired, cameras 32
              # unproven, hub.sock 32 joining: services/hub/src/listen.rs),
              # plus one per camera and service; the rest of the hub keeps
              # 768. 2048 fits them with room to spare (listen::DESCRIPTORS).
              LimitNOFILE = 2048;
              # The camera rings (ring_secs of each camera's bitrate), two
              # PIN lookups of 19 MiB, the log's mapped segments, GStreamer.
              MemoryMax = "1G";
              # tokio's workers and blocking threads (512 at most by default,
              # far fewer in use), GStreamer's per clip and snapshot.
              TasksMax = 512;
            };
        };

        networking.firewall = mkIf cfg.openFirewall {
          allowedTCPPorts = [ grpcPort ];
        };
      }

      # The camera port, for cameras on other nodes only: a camera on the hub
      # dials the loopback address.
      (mkIf (cfg.openFirewall && remoteCameras != [ ]) {
        networking.firewall = {
          allowedTCPPorts = [ recordingPort ];
          allowedUDPPorts = [ recordingPort ];
        };
      })
    ]))

    (mkIf cfg.sensord.enable {
      systemd.services.vigil-sensord = mkService {
        description = "Vigil sensor daemon (GPIO)";
        exec = "vigil-sensord";
        reloadable = true;
        reloadOn = [ configFile ];
        restartOn = [ sensordRestartOn ];
        serviceConfig = lib.optionalAttrs sensordNeedsNetwork lanOnly // {
          # The hub's uid: the doorbell is a signal, which needs it.
          User = "vigil";
          Group = "vigil";
          # The simulated board's socket; ipc-channel's TMPDIR.
          ReadWritePaths = [ runtimeDir ];
          # PrivateDevices=true would hide /dev/gpiomem; DevicePolicy=closed
          # with DeviceAllow= lets through only the GPIO devices.
          PrivateDevices = false;
          DeviceAllow = lib.optionals (!cfg.simulatedGpio) gpioDevices;
          SupplementaryGroups = lib.optionals (!cfg.simulatedGpio) [ "gpio" ];
          # rppal reads /proc/device-tree and /proc/cpuinfo to find the board,
          # so no ProcSubset=pid here.
          PrivateNetwork = !sensordNeedsNetwork;
          # No listener for peers: its session, the GPIO lines, the
          # simulated board's socket, MQTT.
          LimitNOFILE = 1024;
          MemoryMax = "128M";
          TasksMax = 64;
        }
        // lib.optionalAttrs (zigbeeSensors != [ ]) {
          # Zigbee sensors: the broker's CA, client key and password, as
          # [mqtt] in /etc/vigil/vigil.toml names them.
          LoadCredential = mqttCredentials;
        }
        // lib.optionalAttrs (!sensordNeedsNetwork) {
          # No network at all: its session and sockets are Unix ones.
          RestrictAddressFamilies = [ "AF_UNIX" ];
        };
      };

      users.groups.gpio = mkIf (!cfg.simulatedGpio) { };
      services.udev.extraRules = lib.optionalString (!cfg.simulatedGpio) ''
        KERNEL=="gpiomem*", GROUP="gpio", MODE="0660"
        SUBSYSTEM=="gpio", KERNEL=="gpiochip*", GROUP="gpio", MODE="0660"
      '';
    })

    (mkIf cfg.alertd.enable (mkMerge [
      {
      systemd.services.vigil-alertd = mkService {
        description = "Vigil alert daemon (hooks, webhooks)";
        exec = "vigil-alertd";
        restartOn = [ configFile ];
        serviceConfig = {
          # Its own uid: the queue (read only) and hub.sock through group
          # vigil-alerts; it writes nothing on disk.
          User = "vigil-alertd";
          Group = "vigil-alertd";
          PrivateDevices = true;
          ProcSubset = "pid";
          LimitMSGQUEUE = mqueue.limitBytes;
          # No listener: one connection per hook, one per webhook in
          # flight, the queue.
          LimitNOFILE = 1024;
          MemoryMax = "256M";
          TasksMax = 64;
          LoadCredential = lib.optional (
            cfg.webhook.secretFile != null
          ) "webhook-secret:${cfg.webhook.secretFile}";
        };
        # The hooks' sockets exist before alertd connects.
        after = map (h: "${hookUnit h}.socket") cfg.hooks;
        wants = map (h: "${hookUnit h}.socket") cfg.hooks;
      };
      }

      {
      # Each hook: a socket only alertd may connect to; for each connection
      # systemd starts vigil-hook-<name>@.service, the program as vigil-hook
      # with the connection as its stdin (the JSON lines alertd writes).
      systemd.sockets = lib.listToAttrs (
        map (
          h:
          lib.nameValuePair (hookUnit h) {
            description = "Vigil hook ${h.name}: alertd connects here";
            wantedBy = [ "sockets.target" ];
            partOf = [ "vigil.target" ];
            listenStreams = [ (hookSocket h) ];
            socketConfig = {
              Accept = true;
              SocketUser = "vigil-alertd";
              SocketGroup = "vigil-alertd";
              SocketMode = "0600";
              DirectoryMode = "0755";
              # A new connection is a new process; a few at once at most
              # (alertd holds one per hook; a replaced one may linger).
              MaxConnections = 4;
            };
          }
        ) cfg.hooks
      );
      systemd.services = lib.listToAttrs (
        map (
          h:
          lib.nameValuePair "${hookUnit h}@" {
            description = "Vigil hook ${h.name}";
            documentation = [ "https://github.com/vigil-home/vigil/blob/main/docs/nixos.md" ];
            environment.NO_COLOR = "1";
            # Not restarted: each instance is one connection, and alertd
            # makes a new one when it ends.
            serviceConfig = removeAttrs hardening restartSettings // {
              User = "vigil-hook";
              Group = "vigil-hook";
              ExecStart = lib.escapeShellArgs ([ h.command ] ++ h.args);
              StandardInput = "socket";
              StandardOutput = "null";
              StandardError = "journal";
              # The hook's own network: webhooks and chat services.
              RestrictAddressFamilies = [
                "AF_UNIX"
                "AF_INET"
                "AF_INET6"
              ];
              PrivateDevices = true;
              ProcSubset = "pid";
              # Its one writable place (/var/lib/vigil-hooks), shared by
              # every hook.
              StateDirectory = "vigil-hooks";
              StateDirectoryMode = "0700";
              LimitNOFILE = 256;
              MemoryMax = "256M";
              TasksMax = 64;
              MemoryDenyWriteExecute = !cfg.alertd.allowJitHooks;
              LoadCredential = lib.mapAttrsToList (n: p: "${n}:${p}") cfg.alertd.credentials;
            };
          }
        ) cfg.hooks
      );
      }
    ]))

    (mkIf cfg.reportd.enable {
      # Follows the event log (read-only maps of /var/lib/vigil/events) into
      # /var/lib/vigil-reportd/reports.db, writes /var/lib/vigil-reportd/reports/
      # and holds /var/lib/vigil-reportd/reports.lock; no network, no devices. A rebuild of the
      # index is a one-shot run of the same binary (docs/nixos.md).
      systemd.services.vigil-reportd = mkService {
        description = "Vigil report daemon (SQLite index, reports)";
        exec = "vigil-reportd";
        restartOn = [ configFile ];
        serviceConfig = lib.optionalAttrs needsNetwork lanOnly // {
          # Its own uid: reads the event log through group vigil-log, writes
          # only its own directory, whose group (vigil-reportd) the hub is in
          # to read the index (and make SQLite's -shm when reportd is away).
          User = "vigil-reportd";
          Group = "vigil-reportd";
          StateDirectory = "vigil-reportd";
          StateDirectoryMode = "0770";
          PrivateDevices = true;
          ProcSubset = "pid";
          PrivateNetwork = !needsNetwork;
          # No listener: the log's segments it reads, SQLite's files.
          LimitNOFILE = 1024;
          # A batch is about 12 MiB; SQLite's page cache; a weekly report.
          MemoryMax = "512M";
          TasksMax = 64;
        }
        // lib.optionalAttrs (!needsNetwork) {
          RestrictAddressFamilies = [ "AF_UNIX" ];
        };
      };
    })

    (mkIf (localCameras != [ ]) {
      environment.etc = lib.listToAttrs (
        map (cam: lib.nameValuePair "vigil/camd/${cam.name}.toml" { source = camdConfigFile cam; }) localCameras
      );

      systemd.services = lib.listToAttrs (
        map (
          cam:
          let
            # A test pattern needs no device at all.
            capture = cam.source != "test";
          in
          lib.nameValuePair (camdUnit cam.name) (mkService {
            description = "Vigil camera ${cam.name}";
            exec = "vigil-camd";
            args = [
              "--config"
              (camdConfigPath cam.name)
              "--camera"
              cam.name
            ];
            restartOn = [ (camdRestartOn cam) ];
            inherit (gstreamerCache "vigil-camd") environment;
            serviceConfig =
              lanOnly
              // (gstreamerCache "vigil-camd").serviceConfig
              // {
                # Its own uid: it talks to the hub over TCP only.
                User = "vigil-camd";
                Group = "vigil-camd";
                # GStreamer's threads and buffers for one camera.
                MemoryMax = "512M";
                TasksMax = 128;
                # Its key, as /run/credentials/vigil-camd@<name>.service/camera-key.
                LoadCredential = lib.optional (cam.keyFile != null) "${camdCredential}:${cam.keyFile}";
                # No listener but the beacon's UDP port: one link to the hub,
                # the heartbeat socket, the camera's buffers (dma-buf).
                LimitNOFILE = 1024;
              }
              // (
                if capture then
                  {
                    # libcamera and V4L2 need the camera's device nodes:
                    # DevicePolicy=closed with DeviceAllow= lets through only those.
                    PrivateDevices = false;
                    DeviceAllow = videoDevices;
                    SupplementaryGroups = [ "video" ];
                  }
                else
                  {
                    PrivateDevices = true;
                    ProcSubset = "pid";
                  }
              );
            # The camera is the client of the hub: wait for an address (and
            # for a hub on the same machine, to spare a first reconnection).
            after = [ "network-online.target" ] ++ lib.optional cfg.hub.enable "vigil-hub.service";
            wants = [ "network-online.target" ];
          })
        ) localCameras
      );

      services.udev.extraRules = lib.optionalString (lib.any (c: c.source != "test") localCameras) ''
        SUBSYSTEM=="dma_heap", GROUP="video", MODE="0660"
      '';
    })

    # The MQTT bridge: a client of the hub's gRPC API (TCP) and of the
    # broker, nothing else. It joins no local socket (hub.sock admits the
    # hub's uid and root only, a group would not do), so it has a uid of its
    # own and is paired once by hand, as root (docs/nixos.md, "MQTT"):
    #   vigilctl --credentials /var/lib/vigil-mqtt/hub pair --here mqtt --role user
    #   chown -R vigil-mqtt:vigil-mqtt /var/lib/vigil-mqtt/hub
    # Until then it waits, retrying the hub every 2 s.
    (mkIf cfg.mqtt.enable {
      environment.etc."vigil/mqttd.toml".source = mqttdConfigFile;

      users.users.vigil-mqtt = {
        isSystemUser = true;
        group = "vigil-mqtt";
        description = "Vigil MQTT bridge";
      };
      users.groups.vigil-mqtt = { };

      systemd.services.vigil-mqttd = mkService {
        description = "Vigil MQTT bridge (Home Assistant, event stream, Zigbee keypads)";
        exec = "vigil-mqttd";
        args = [
          "--config"
          mqttdConfigPath
        ];
        restartOn = [ mqttdRestartOn ];
        # No ipc-channel: its private /tmp, not /run/vigil (which it may not
        # write).
        environment.TMPDIR = "/tmp";
        serviceConfig = lanOnly // {
          User = "vigil-mqtt";
          Group = "vigil-mqtt";
          # Its one writable place: the pairing (client.key, client.pem,
          # ca.pem, hub) under /var/lib/vigil-mqtt/hub.
          StateDirectory = "vigil-mqtt";
          StateDirectoryMode = "0700";
          PrivateDevices = true;
          ProcSubset = "pid";
          # The broker and the hub over TCP; no netlink.
          RestrictAddressFamilies = [
            "AF_UNIX"
            "AF_INET"
            "AF_INET6"
          ];
          # The broker's CA, client key and password, as
          # /run/credentials/vigil-mqttd.service/mqtt-*.
          LoadCredential = mqttCredentials;
          # Not on the alarm's path: SIGTERM publishes `offline` and exits 0,
          # and that stop is final; 1 (a runtime failure) restarts with the
          # back-off of the others, 78 (its config or a file it names) does
          # not. A hub or a broker away is no failure: it waits for them.
          Restart = "on-failure";
          # Two connections (hub, broker) and DNS.
          LimitNOFILE = 256;
          # A current-thread runtime; its queues hold at most 1024 outgoing
          # and 256 incoming messages (snapshots among them).
          MemoryMax = "128M";
          TasksMax = 32;
        };
        # The broker and the hub are reached over the network (a hub on this
        # machine first, to spare a first retry).
        after = [ "network-online.target" ] ++ lib.optional cfg.hub.enable "vigil-hub.service";
        wants = [ "network-online.target" ] ++ lib.optional cfg.hub.enable "vigil-hub.service";
      };
    })

    # hub = "discover": camd listens for the hub's beacon (incoming UDP
    # broadcasts). Its IPAddressAllow= (the LAN) already admits them, as
    # incoming packets are filtered by their source, the hub.
    (mkIf (cfg.openFirewall && discoveryPorts != [ ]) {
      networking.firewall.allowedUDPPorts = discoveryPorts;
    })
  ]);
}
