# Evaluates nixos/modules/vigil.nix with nothing but nixpkgs' `lib`: no
# nixpkgs package set, no NixOS, no network. Used where the real thing can't
# be fetched; see nixos/eval/run.sh.
#
#   nix-instantiate --read-write-mode --eval --strict --json \
#     nixos/eval/eval-module.nix --arg nixpkgsLib /path/to/nixpkgs.lib -A report
#
# What stands in for NixOS:
#  * stub declarations of exactly the NixOS options the module sets, with
#    their real names and close-enough types (a typo in an option name, or a
#    value of the wrong shape, fails here just as it would in NixOS);
#  * a fake `pkgs` with `formats.toml` (a pure-Nix TOML writer; the real one
#    runs remarshal's json2toml), and placeholder derivations.
#
# What it checks:
#  * the example configuration (two sensors, a local and a remote camera)
#    evaluates, passes the module's assertions and gives no warnings;
#  * the generated TOML parses (builtins.fromTOML), round-trips, and uses only
#    the keys services/vigil-config/src/sections/ accepts (it has
#    deny_unknown_fields); every camera's key_file is a credential of the
#    unit that reads it;
#  * the defaults: `defaultsToml` is what the module writes when no option is
#    set but those a file needs to have entries; run.sh compares it with the
#    committed nixos/eval/module-defaults.toml, whose every value the Rust
#    test services/vigil-config/tests/nixos_defaults.rs checks against the
#    Rust defaults;
#  * the units: camd's devices, credentials and restart, the hub's camera
#    port in the firewall, no private IPC namespace anywhere;
#  * bad configurations are refused by the assertions, and the not-yet-read
#    tables appear only when their options leave the defaults;
#  * discovery: [recording] beacon (default, off, tuned) and the hub's
#    IPAddressAllow= for it; a camera node with hub = "discover" writes
#    `hub = "discover"` and `discovery_port` and opens that UDP port;
#  * motion on video: a camera with motion = true writes `motion = true` and
#    `motion_percent` (the hub's file only, not camd's); a "<camera>-motion"
#    that is a sensor's name, or longer than 31 characters, is refused.
{
  nixpkgsLib,
}:

let
  lib = import (nixpkgsLib + "/lib");
  inherit (lib) mkOption types;

  # ---------------------------------------------------------------- fake pkgs

  fakeDrv = name: {
    type = "derivation";
    inherit name;
    version = "0.1.0";
    outPath = "/nix/store/00000000000000000000000000000000-${name}";
  };

  # TOML writer: tables after scalars, arrays of tables as [[x]], tables
  # nested in arrays of tables as [x.y] after their [[x]].
  toTOML =
    let
      isTableArray = v: builtins.isList v && v != [ ] && lib.all builtins.isAttrs v;
      key = k: if builtins.match "[A-Za-z0-9_-]+" k != null then k else builtins.toJSON k;
      value =
        v:
        if builtins.isString v || builtins.isPath v then
          builtins.toJSON (toString v)
        else if builtins.isBool v then
          lib.boolToString v
        else if builtins.isInt v || builtins.isFloat v then
          toString v
        else if builtins.isList v then
          "[" + lib.concatMapStringsSep ", " value v + "]"
        else if builtins.isAttrs v && !(v ? outPath) then
          "{ " + lib.concatStringsSep ", " (lib.mapAttrsToList (k: x: "${key k} = ${value x}") v) + " }"
        else if v ? outPath then
          builtins.toJSON v.outPath
        else
          throw "toTOML: cannot write ${builtins.typeOf v}";
      section =
        prefix: attrs:
        let
          path = k: if prefix == "" then key k else "${prefix}.${key k}";
          isTable = v: builtins.isAttrs v && !(v ? outPath);
          scalars = lib.filterAttrs (_: v: !(isTable v) && !(isTableArray v)) attrs;
          tables = lib.filterAttrs (_: isTable) attrs;
          arrays = lib.filterAttrs (_: isTableArray) attrs;
        in
        lib.concatStrings (lib.mapAttrsToList (k: v: "${key k} = ${value v}\n") scalars)
        + lib.concatStrings (lib.mapAttrsToList (k: v: "\n[${path k}]\n" + section (path k) v) tables)
        + lib.concatStrings (
          lib.mapAttrsToList (k: vs: lib.concatMapStrings (v: "\n[[${path k}]]\n" + section (path k) v) vs) arrays
        );
    in
    section "";

  fakePkgs = {
    formats.toml =
      { }:
      {
        # as pkgs/pkgs-lib/formats.nix defines it
        type =
          let
            valueType =
              types.oneOf [
                types.bool
                types.int
                types.float
                types.str
                types.path
                (types.attrsOf valueType)
                (types.listOf valueType)
              ]
              // {
                description = "TOML value";
              };
          in
          valueType;
        generate = name: value: builtins.toFile name (toTOML value);
      };
    coreutils = fakeDrv "coreutils";
    libargon2 = fakeDrv "libargon2";
    jq = fakeDrv "jq";
    sqlite = fakeDrv "sqlite";
    netcat = fakeDrv "netcat";
    inherit lib;
    mosquitto = fakeDrv "mosquitto";
    openssl = fakeDrv "openssl";
    writeShellScript = name: _text: "/nix/store/00000000000000000000000000000000-${name}";
    writeText = name: _text: "/nix/store/00000000000000000000000000000000-${name}";
    runCommand = name: _env: _script: fakeDrv name;
    testers.runNixOSTest = test: test; # the tests below are inspected, not run
    callPackage = _: _: throw "eval harness: set services.vigil.package";
  };

  # ------------------------------------------------- stub NixOS declarations
  # Names and shapes as in nixpkgs (see the table in docs/nixos.md).

  # systemd's unitOption accepts scalars or lists of scalars.
  unitValue = types.oneOf [
    types.bool
    types.int
    types.str
    types.path
    (types.listOf (
      types.oneOf [
        types.bool
        types.int
        types.str
        types.path
      ]
    ))
  ];
  serviceTypes = {
    "exec" = true;
    "simple" = true;
    "forking" = true;
    "oneshot" = true;
    "dbus" = true;
    "notify" = true;
    "notify-reload" = true;
    "idle" = true;
  };
  unitNames = types.listOf types.str;
  # Mosquitto's settings: single-line strings, paths, booleans, integers,
  # under the keys its module's assertions accept (freeformListenerKeys,
  # freeformGlobalKeys of nixpkgs' mosquitto.nix, commit 0101675d).
  mosquittoValue = types.oneOf [
    (types.strMatching "[^\r\n]*")
    types.path
    types.bool
    types.int
  ];
  mosquittoSettings =
    keys:
    mkOption {
      type = types.addCheck (types.attrsOf mosquittoValue) (s: lib.all (k: lib.elem k keys) (lib.attrNames s));
      default = { };
    };
  mosquittoListenerKeys = [
    "accept_protocol_versions"
    "allow_anonymous"
    "allow_zero_length_clientid"
    "auto_id_prefix"
    "bind_interface"
    "cafile"
    "capath"
    "certfile"
    "ciphers"
    "ciphers_tls1.3"
    "crlfile"
    "dhparamfile"
    "disable_client_cert_date_checks"
    "enable_proxy_protocol"
    "http_dir"
    "keyfile"
    "listener_allow_anonymous"
    "listener_auto_id_prefix"
    "max_connections"
    "max_qos"
    "max_topic_alias"
    "mount_point"
    "protocol"
    "proxy_protocol_v2_require_tls"
    "psk_file"
    "psk_hint"
    "require_certificate"
    "socket_domain"
    "tls_engine"
    "tls_engine_kpass_sha1"
    "tls_keyform"
    "tls_version"
    "use_identity_as_username"
    "use_subject_as_username"
    "use_username_as_clientid"
    "websockets_origin"
  ];
  mosquittoGlobalKeys = [
    "allow_duplicate_messages"
    "autosave_interval"
    "autosave_on_changes"
    "check_retain_source"
    "connection_messages"
    "enable_control_api"
    "global_max_clients"
    "global_max_connections"
    "log_facility"
    "log_timestamp"
    "log_timestamp_format"
    "max_inflight_bytes"
    "max_inflight_messages"
    "max_keepalive"
    "max_packet_size"
    "max_queued_bytes"
    "max_queued_messages"
    "memory_limit"
    "message_size_limit"
    "persistence_file"
    "persistence_location"
    "persistent_client_expiration"
    "pid_file"
    "queue_qos0_messages"
    "retain_available"
    "retain_expiry_interval"
    "set_tcp_nodelay"
    "sys_interval"
    "upgrade_outgoing_qos"
    "websockets_headers_size"
    "websockets_log_level"
  ];
  listOpt = t: mkOption {
    type = types.listOf t;
    default = [ ];
  };
  strOpt = mkOption {
    type = types.str;
    default = "";
  };
  # An attribute set of submodules with these options (users, units).
  attrsOfOpt =
    options:
    mkOption {
      default = { };
      type = types.attrsOf (types.submodule { inherit options; });
    };

  stubs =
    { config, ... }:
    {
      options = {
        assertions = mkOption {
          type = types.listOf types.unspecified;
          default = [ ];
        };
        warnings = listOpt types.str;

        users.users = attrsOfOpt {
          isSystemUser = mkOption {
            type = types.bool;
            default = false;
          };
          isNormalUser = mkOption {
            type = types.bool;
            default = false;
          };
          group = strOpt;
          description = strOpt;
          extraGroups = listOpt types.str;
        };
        users.groups = mkOption {
          default = { };
          type = types.attrsOf (
            types.submodule {
              options.gid = mkOption {
                type = types.nullOr types.int;
                default = null;
              };
              options.members = listOpt types.str;
            }
          );
        };

        environment.etc = mkOption {
          default = { };
          type = types.attrsOf (
            types.submodule {
              options.source = mkOption { type = types.path; };
              options.mode = mkOption {
                type = types.str;
                default = "symlink";
              };
            }
          );
        };
        environment.systemPackages = listOpt types.package;

        boot.kernel.sysctl = mkOption {
          default = { };
          type = types.attrsOf (
            types.nullOr (
              types.oneOf [
                types.bool
                types.int
                types.str
              ]
            )
          );
        };

        # Only the VM tests set these (nixos/modules/virtualisation/qemu-vm.nix).
        virtualisation.memorySize = mkOption { type = types.ints.positive; };
        virtualisation.cores = mkOption { type = types.ints.positive; };

        networking.firewall.allowedTCPPorts = listOpt types.port;
        networking.firewall.allowedUDPPorts = listOpt types.port;

        services.udev.extraRules = mkOption {
          type = types.lines;
          default = "";
        };

        systemd.tmpfiles.rules = listOpt types.str;

        # nixpkgs' Mosquitto (nixos/modules/services/networking/mosquitto.nix),
        # as the Pi configuration's broker and the MQTT test's use it: the
        # options' names and shapes, and the keys its assertions accept in
        # the free-form `settings`.
        services.mosquitto = {
          enable = mkOption {
            type = types.bool;
            default = false;
          };
          persistence = mkOption {
            type = types.bool;
            default = true;
          };
          dataDir = mkOption {
            type = types.path;
            default = "/var/lib/mosquitto";
          };
          logType = listOpt types.str;
          includeDirs = listOpt types.path;
          bridges = mkOption {
            type = types.attrsOf types.anything;
            default = { };
          };
          settings = mosquittoSettings mosquittoGlobalKeys;
          listeners = listOpt (
            types.submodule {
              options = {
                port = mkOption {
                  type = types.port;
                  default = 1883;
                };
                address = mkOption {
                  type = types.nullOr types.str;
                  default = null;
                };
                authPlugins = listOpt types.anything;
                omitPasswordAuth = mkOption {
                  type = types.bool;
                  default = false;
                };
                acl = listOpt types.str;
                settings = mosquittoSettings mosquittoListenerKeys;
                users = mkOption {
                  default = { };
                  type = types.attrsOf (
                    types.submodule {
                      options = lib.genAttrs [ "password" "hashedPassword" ] (
                        _:
                        mkOption {
                          type = types.uniq (types.nullOr types.str);
                          default = null;
                        }
                      )
                      // lib.genAttrs [ "passwordFile" "hashedPasswordFile" ] (
                        _:
                        mkOption {
                          type = types.uniq (types.nullOr types.path);
                          default = null;
                        }
                      )
                      // {
                        acl = listOpt types.str;
                      };
                    }
                  );
                };
              };
            }
          );
        };

        systemd.targets = attrsOfOpt {
          description = strOpt;
          wantedBy = listOpt types.str;
        };

        # nixos/lib/systemd-unit-options.nix (socketOptions).
        systemd.sockets = attrsOfOpt {
          description = strOpt;
          wantedBy = listOpt types.str;
          partOf = listOpt types.str;
          listenStreams = listOpt types.str;
          socketConfig = mkOption {
            type = types.attrsOf unitValue;
            default = { };
          };
        };

        systemd.services = mkOption {
          default = { };
          type = types.attrsOf (
            types.submodule (
              { config, ... }:
              {
                options = {
                  description = mkOption {
                    type = types.str;
                    default = "";
                  };
                  documentation = listOpt types.str;
                  wantedBy = listOpt types.str;
                  partOf = listOpt types.str;
                  after = listOpt types.str;
                  before = listOpt types.str;
                  wants = listOpt types.str;
                  script = mkOption {
                    type = types.lines;
                    default = "";
                  };
                  startLimitIntervalSec = mkOption {
                    type = types.int;
                    default = 0;
                  };
                  reloadTriggers = listOpt types.unspecified;
                  restartTriggers = listOpt types.unspecified;
                  environment = mkOption {
                    type = types.attrsOf (types.nullOr (types.oneOf [ types.str types.path types.package ]));
                    default = { };
                  };
                  serviceConfig = mkOption {
                    type = types.addCheck (types.attrsOf unitValue) (
                      # Restart=always, but for the MQTT bridge (checked
                      # below): on-failure.
                      sc:
                      (sc ? Type -> serviceTypes ? ${sc.Type})
                      && (sc ? Restart -> lib.elem sc.Restart [ "always" "on-failure" ])
                    );
                    default = { };
                  };
                };
              }
            )
          );
        };
      };
    };

  # --------------------------------------------------------------- configs

  example = {
    services.vigil = {
      enable = true;
      package = fakeDrv "vigil";
      sensors = [
        {
          name = "front-door";
          kind = "door";
          pin = 17;
        }
        {
          name = "hall-motion";
          kind = "motion";
          pin = 22;
          pull = "down";
          debounceMs = 10;
          modes = [
            "away"
            "night"
          ];
          supervisionSecs = 86400;
        }
      ];
      outputs.siren = {
        pin = 23;
      };
      outputs.buzzer = {
        pin = 24;
        active = "low";
      };
      cameras = [
        {
          name = "porch";
          source = "libcamera";
          keyFile = "/var/lib/vigil-secrets/porch-key";
        }
        {
          name = "garage";
          local = false;
          keyFile = "/var/lib/vigil-secrets/garage-key";
        }
      ];
      users = [
        {
          name = "alice";
          role = "admin";
          pinHashFile = "/var/lib/vigil-secrets/alice-pin";
        }
      ];
      hooks = [
        {
          name = "log";
          command = "/run/current-system/sw/bin/logger";
          args = [
            "-t"
            "vigil-alert"
          ];
        }
      ];
      otlpEndpoint = null;
    };
  };

  evalWith =
    modules:
    lib.evalModules {
      modules = [
        stubs
        ../modules/vigil.nix
        { _module.args.pkgs = fakePkgs; }
      ]
      ++ modules;
    };

  ok = evalWith [ example ];
  c = ok.config;

  # The defaults: no option set but what gives every kind of entry its
  # defaulted keys (a sensor, a siren, a camera on the hub and one that
  # discovers it with motion on, a user, a hook, a webhook). What the
  # module writes here, header and all, is nixos/eval/module-defaults.toml;
  # the Rust test drops the keys set here and compares the rest with the
  # Rust defaults.
  defaults = evalWith [
    {
      services.vigil = {
        enable = true;
        package = fakeDrv "vigil";
        sensors = [
          {
            name = "front-door";
            kind = "door";
            pin = 17;
          }
        ];
        outputs.siren.pin = 23;
        cameras = [
          {
            name = "porch";
            keyFile = "/var/lib/vigil-secrets/porch-key";
          }
          {
            name = "garage";
            local = false;
            hub = "discover";
            motion = true;
            keyFile = "/var/lib/vigil-secrets/garage-key";
          }
        ];
        users = [
          {
            name = "alice";
            pinHashFile = "/var/lib/vigil-secrets/alice-pin";
          }
        ];
        hooks = [
          {
            name = "log";
            command = "/run/current-system/sw/bin/logger";
          }
        ];
        webhook.url = "https://example.org/vigil";
      };
    }
  ];
  defaultsText = builtins.readFile defaults.config.environment.etc."vigil/vigil.toml".source;
  defaultsToml =
    "# What nixos/modules/vigil.nix writes with no option set but the entries of\n"
    + "# nixos/eval/eval-module.nix's `defaults`. Generated: nixos/eval/run.sh\n"
    + "# --update-defaults rewrites it, and fails while it is stale. The Rust test\n"
    + "# services/vigil-config/tests/nixos_defaults.rs checks every value the\n"
    + "# module chose against the Rust default.\n"
    + defaultsText;

  failedAssertions = cfg: map (a: a.message) (lib.filter (a: !a.assertion) cfg.assertions);

  tomlText = builtins.readFile c.environment.etc."vigil/vigil.toml".source;
  parsed = builtins.fromTOML tomlText;

  # The keys the Rust side accepts (deny_unknown_fields), table by table: the
  # *File types of services/vigil-config/src/sections/.
  schema = {
    top = [
      "runtime"
      "gpio"
      "sensors"
      "outputs"
      "users"
      "cameras"
      "hooks"
      "alarm"
      "grpc"
      "alerts"
      "events"
      "recording"
      "webhook"
      "telemetry"
      "mqtt"
    ];
    mqtt = [
      "broker"
      "ca_file"
      "client_cert_file"
      "client_key_file"
      "credentials_file"
      "insecure_plaintext"
      "base_topic"
      "discovery_prefix"
      "zigbee2mqtt_topic"
      "hub"
      "hub_credentials"
      "keypads"
    ];
    keypads = [
      "name"
      "friendly_name"
    ];
    events = [
      "sync_window_ms"
      "max_age_days"
      "max_megabytes"
    ];
    recording = [
      "listen"
      "ring_secs"
      "pre_roll_secs"
      "post_capture_secs"
      "offline_after_secs"
      "max_age_days"
      "min_free_megabytes"
      "slots"
      "semaphore"
      "beacon"
    ];
    alerts = [
      "queue"
      "depth"
      "msg_size"
      "cooldown_secs"
      "hook_timeout_ms"
      "group"
    ];
    webhook = [
      "url"
      "format"
      "min_priority"
      "timeout_secs"
      "secret_file"
    ];
    alarm = [
      "chime"
      "double_knock_secs"
      "require_pin_to_arm"
      "modes"
    ];
    alarmModes = [
      "home"
      "away"
      "night"
      "vacation"
      "custom"
    ];
    alarmMode = [
      "exit_delay_secs"
      "entry_delay_secs"
      "trigger_secs"
    ];
    grpc = [
      "listen"
      "hostnames"
    ];
    runtime = [
      "reports_dir"
      "runtime_dir"
      "state_dir"
    ];
    gpio = [ "backend" ];
    sensors = [
      "name"
      "kind"
      "pin"
      "pull"
      "active"
      "debounce_ms"
      "modes"
      "supervision_secs"
      "response"
      "arm_after_close"
      "auto_bypass"
      "double_knock"
      "trigger_on_fault"
      "source"
      "friendly_name"
    ];
    outputs = [
      "siren"
      "buzzer"
    ];
    output = [
      "pin"
      "active"
    ];
    users = [
      "name"
      "role"
      "pin_hash"
      "pin_hash_file"
      "duress_pin_hash"
      "duress_pin_hash_file"
    ];
    cameras = [
      "name"
      "source"
      "device"
      "width"
      "height"
      "framerate"
      "encoder"
      "bitrate_kbps"
      "keyframe_secs"
      "hub"
      "discovery_port"
      "key_file"
      "key"
      "motion"
      "motion_percent"
    ];
    hooks = [
      "name"
      "command"
      "args"
      "socket"
    ];
    telemetry = [
      "otlp_endpoint"
      "log_format"
      "log_filter"
    ];
  };
  unknown =
    allowed: attrs: map (k: k) (lib.filter (k: !(lib.elem k allowed)) (lib.attrNames attrs));
  schemaProblems =
    t:
    unknown schema.top t
    ++ unknown schema.runtime (t.runtime or { })
    ++ unknown schema.gpio (t.gpio or { })
    ++ lib.concatMap (unknown schema.sensors) (t.sensors or [ ])
    ++ unknown schema.outputs (t.outputs or { })
    ++ lib.concatMap (unknown schema.output) (lib.attrValues (t.outputs or { }))
    ++ lib.concatMap (unknown schema.users) (t.users or [ ])
    ++ lib.concatMap (unknown schema.cameras) (t.cameras or [ ])
    ++ lib.concatMap (unknown schema.hooks) (t.hooks or [ ])
    ++ unknown schema.alarm (t.alarm or { })
    ++ unknown schema.alarmModes (t.alarm.modes or { })
    ++ lib.concatMap (unknown schema.alarmMode) (lib.attrValues (t.alarm.modes or { }))
    ++ unknown schema.grpc (t.grpc or { })
    ++ unknown schema.alerts (t.alerts or { })
    ++ unknown schema.events (t.events or { })
    ++ unknown schema.recording (t.recording or { })
    ++ unknown schema.webhook (t.webhook or { })
    ++ unknown schema.telemetry (t.telemetry or { })
    ++ unknown schema.mqtt (t.mqtt or { })
    ++ lib.concatMap (unknown schema.keypads) (t.mqtt.keypads or [ ]);

  # Renders [Service] roughly as NixOS' systemd-lib attrsToSection does.
  renderUnit =
    name: s:
    let
      line =
        k: v:
        if builtins.isList v then
          lib.concatMapStrings (x: line k x) v
        else
          "${k}=${if builtins.isBool v then lib.boolToString v else toString v}\n";
    in
    "## ${name}.service\n[Unit]\n"
    + "Description=${s.description}\nWantedBy(NixOS)=${toString s.wantedBy}\nPartOf=${toString s.partOf}\nAfter=${toString s.after}\n"
    + lib.optionalString (s.wants != [ ]) "Wants=${toString s.wants}\n"
    + lib.optionalString (s.reloadTriggers != [ ]) "X-Reload-Triggers=${toString (map (t: builtins.substring 0 60 (toString t)) s.reloadTriggers)}\n"
    + lib.optionalString (s.restartTriggers != [ ]) "X-Restart-Triggers=${toString (map (t: builtins.substring 0 60 (toString t)) s.restartTriggers)}\n"
    + "StartLimitIntervalSec=${toString s.startLimitIntervalSec}\n"
    + "[Service]\n"
    + lib.concatStrings (lib.mapAttrsToList (k: v: "Environment=\"${k}=${toString v}\"\n") s.environment)
    + lib.concatStrings (lib.mapAttrsToList line s.serviceConfig);

  camdTomlText = builtins.readFile c.environment.etc."vigil/camd/porch.toml".source;
  camdToml = builtins.fromTOML camdTomlText;
  camd = c.systemd.services."vigil-camd@porch".serviceConfig;
  camdUnit = c.systemd.services."vigil-camd@porch";
  cameraNamed = name: lib.findFirst (x: x.name == name) null parsed.cameras;

  # ---- MQTT: the bridge (vigil-mqttd), [mqtt], Zigbee sensors.
  mqttOptions = {
    enable = true;
    broker = "mqtt.lan:8883";
    caFile = "/var/lib/mosquitto/tls/ca.pem";
    clientCertFile = "/etc/vigil/mqtt-client.pem";
    clientKeyFile = "/var/lib/vigil-secrets/mqtt-client-key";
    credentialsFile = "/var/lib/vigil-secrets/mqtt-credentials";
    keypads = [
      {
        name = "hall-keypad";
        friendlyName = "hall_keypad";
      }
    ];
  };
  zigbeeDoor = {
    name = "garage-door";
    kind = "door";
    source = "zigbee2mqtt";
    friendlyName = "garage_contact";
    supervisionSecs = 7200;
  };
  # The example with services.vigil.mqtt = `options` and `sensors` after
  # its own.
  mqttEval =
    options: sensors:
    evalWith [
      example
      {
        services.vigil.mqtt = options;
        services.vigil.sensors = lib.mkAfter sensors;
      }
    ];
  # A file of /etc as a node's config writes it, parsed.
  etcToml = cfg: file: builtins.fromTOML (builtins.readFile cfg.environment.etc.${file}.source);
  # The example with the broker, a keypad and a Zigbee door.
  mqtt = mqttEval mqttOptions [ zigbeeDoor ];
  mqttC = mqtt.config;
  mqttShared = etcToml mqttC "vigil/vigil.toml";
  mqttdText = builtins.readFile mqttC.environment.etc."vigil/mqttd.toml".source;
  mqttdToml = builtins.fromTOML mqttdText;
  mqttd = mqttC.systemd.services.vigil-mqttd;
  # [mqtt] as `unit` reads it.
  mqttTable = unit: {
    broker = "mqtt.lan:8883";
    ca_file = "/run/credentials/${unit}.service/mqtt-ca";
    client_cert_file = "/run/credentials/${unit}.service/mqtt-client-cert";
    client_key_file = "/run/credentials/${unit}.service/mqtt-client-key";
    credentials_file = "/run/credentials/${unit}.service/mqtt-credentials";
    hub = "127.0.0.1:7443";
    hub_credentials = "/var/lib/vigil-mqtt/hub";
    keypads = [
      {
        name = "hall-keypad";
        friendly_name = "hall_keypad";
      }
    ];
  };
  mqttLoad = [
    "mqtt-ca:/var/lib/mosquitto/tls/ca.pem"
    "mqtt-client-cert:/etc/vigil/mqtt-client.pem"
    "mqtt-client-key:/var/lib/vigil-secrets/mqtt-client-key"
    "mqtt-credentials:/var/lib/vigil-secrets/mqtt-credentials"
  ];
  mqttdTomlOf = cfg: etcToml cfg "vigil/mqttd.toml";
  # What restarts the bridge: a topic, not a sensor.
  mqttMoreSensors = mqttEval mqttOptions [
    zigbeeDoor
    {
      name = "back-door";
      kind = "door";
      pin = 27;
    }
  ];
  mqttRetopic = mqttEval (mqttOptions // { baseTopic = "home"; }) [ zigbeeDoor ];
  # The bridge without Zigbee sensors, its topics set, the hub on one address.
  mqttTopics = evalWith [
    example
    {
      services.vigil.mqtt = {
        enable = true;
        broker = "[fd00::2]:8883";
        caFile = "/etc/vigil/mqtt-ca.pem";
        baseTopic = "home/vigil";
        discoveryPrefix = "";
        zigbee2mqttTopic = "z2m";
      };
      services.vigil.grpc.listenAddress = "192.168.1.10:7443";
    }
  ];
  # A broker on this machine without TLS; the hub on a wildcard and a port
  # of its own.
  mqttPlain = evalWith [
    example
    {
      services.vigil.mqtt = {
        enable = true;
        broker = "localhost:1883";
        insecurePlaintext = true;
      };
      services.vigil.grpc.listenAddress = "0.0.0.0:7500";
    }
  ];
  # The bridge on a node without the hub: the address stored at pairing.
  mqttNoHub = evalWith [
    {
      services.vigil = {
        enable = true;
        package = fakeDrv "vigil";
        hub.enable = false;
        sensord.enable = false;
        alertd.enable = false;
        reportd.enable = false;
        mqtt = {
          enable = true;
          broker = "vigil-pi4:8883";
          caFile = "/etc/vigil/mqtt-ca.pem";
        };
      };
    }
  ];
  # Refused: no broker, no CA, a certificate without its key, a password in
  # the store.
  mqttBad = evalWith [
    example
    {
      services.vigil.mqtt = {
        enable = true;
        clientCertFile = "/etc/vigil/mqtt-client.pem";
        credentialsFile = "/nix/store/00000000000000000000000000000000-mqtt-credentials";
      };
    }
  ];
  # Refused: a Zigbee sensor with a pin and a pull (and no friendly name), a
  # wired one without a pin, a wired one with a friendly name, two Zigbee
  # sensors that are one device, Zigbee sensors without the broker.
  zigbeeBad = evalWith [
    example
    {
      services.vigil.sensors = lib.mkAfter [
        {
          name = "z1";
          kind = "door";
          source = "zigbee2mqtt";
          pin = 5;
          pull = "down";
        }
        {
          name = "w1";
          kind = "window";
        }
        {
          name = "w2";
          kind = "window";
          pin = 6;
          friendlyName = "window_2";
        }
        {
          name = "z2";
          kind = "door";
          source = "zigbee2mqtt";
          friendlyName = "same_device";
        }
        {
          name = "z3";
          kind = "water";
          source = "zigbee2mqtt";
          friendlyName = "same_device";
        }
      ];
    }
  ];
  # Refused: `active` set on a Zigbee sensor, even to its default.
  zigbeeActive = mqttEval mqttOptions [ (zigbeeDoor // { active = "high"; }) ];
  # Refused by the option types: a wildcard in a topic, a broker without a port.
  mqttBadTopic = evalWith [
    example
    { services.vigil.mqtt = mqttOptions // { baseTopic = "vigil/+"; }; }
  ];
  mqttBadBroker = evalWith [
    example
    { services.vigil.mqtt = mqttOptions // { broker = "mqtt.lan"; }; }
  ];

  # docs/mqtt.md's broker ACL (the block the Rust tests run the broker
  # with), per user, as services.mosquitto's `acl` lists; null when the
  # page or its tested block is missing.
  docAcl =
    let
      file = ../../docs/mqtt.md;
      lines = lib.splitString "\n" (builtins.readFile file);
      at = lib.lists.findFirstIndex (l: l == "<!-- tested: mosquitto-acl -->") null lines;
      # After the marker, the ``` line, then the ACL until the next ```.
      after = lib.drop (at + 2) lines;
      block = lib.take (lib.lists.findFirstIndex (lib.hasPrefix "```") 0 after) after;
      step =
        acc: l:
        if lib.hasPrefix "user " l then
          {
            user = lib.removePrefix "user " l;
            acl = acc.acl // {
              ${lib.removePrefix "user " l} = [ ];
            };
          }
        else if lib.hasPrefix "topic " l && acc.user != null then
          acc
          // {
            acl = acc.acl // {
              ${acc.user} = acc.acl.${acc.user} ++ [ (lib.removePrefix "topic " l) ];
            };
          }
        else
          acc;
    in
    if !(builtins.pathExists file) || at == null then
      null
    else
      (lib.foldl' step {
        user = null;
        acl = { };
      } block).acl;

  # Bad configurations the assertions must refuse.
  bad = evalWith [
    example
    {
      services.vigil.sensors = lib.mkAfter [
        {
          name = "case-tamper";
          kind = "tamper";
          pin = 17; # clashes with front-door
          modes = [ "away" ]; # not allowed on a 24-hour zone
        }
      ];
      services.vigil.users = lib.mkAfter [
        {
          name = "bob";
          pinHashFile = "/nix/store/00000000000000000000000000000000-bob-pin";
        }
      ];
    }
  ];

  # A not-yet-read table, set away from its default.
  future = evalWith [
    example
    {
      services.vigil.webhook.url = "https://example.org/hook";
      services.vigil.webhook.secretFile = "/var/lib/vigil-secrets/webhook";
    }
  ];
  futureParsed = builtins.fromTOML (
    builtins.readFile future.config.environment.etc."vigil/vigil.toml".source
  );

  # [alarm] and [grpc]: read by the Rust side, written only when set.
  tuned = evalWith [
    example
    {
      services.vigil.alarm.modes.away = {
        exitDelaySecs = 5;
        entryDelaySecs = 5;
      };
      services.vigil.alarm.requirePinToArm = true;
      services.vigil.grpc.hostnames = [ "vigil-pi4.local" ];
      services.vigil.users = lib.mkForce [
        {
          name = "alice";
          role = "admin";
          pinHashFile = "/var/lib/vigil-secrets/alice-pin";
          duressPinHashFile = "/var/lib/vigil-secrets/alice-duress";
        }
      ];
    }
  ];
  tunedParsed = builtins.fromTOML (
    builtins.readFile tuned.config.environment.etc."vigil/vigil.toml".source
  );

  simulated = evalWith [
    example
    { services.vigil.simulatedGpio = true; }
  ];

  # Bad cameras the assertions must refuse: no key, a key in the store, a
  # camera node that does not say where the hub is, a pre-roll longer than
  # the ring.
  badCameras = evalWith [
    example
    {
      services.vigil.hub.enable = false;
      services.vigil.cameras = lib.mkForce [
        { name = "porch"; }
        {
          name = "shed";
          keyFile = "/nix/store/00000000000000000000000000000000-shed-key";
          hub = "vigil-pi4:7445";
        }
      ];
      services.vigil.recording = {
        ringSecs = 5;
        preRollSecs = 10;
      };
    }
  ];

  # Discovery. A camera node whose camera finds the hub by its beacon, on a
  # port of its own.
  discoverNode = evalWith [
    {
      services.vigil = {
        enable = true;
        package = fakeDrv "vigil";
        hub.enable = false;
        sensord.enable = false;
        alertd.enable = false;
        reportd.enable = false;
        cameras = [
          {
            name = "garage";
            hub = "discover";
            discoveryPort = 7447;
            keyFile = "/var/lib/vigil-secrets/garage-key";
          }
        ];
      };
    }
  ];
  discoverNodeToml = builtins.fromTOML (
    builtins.readFile discoverNode.config.environment.etc."vigil/camd/garage.toml".source
  );
  discoverCamd = discoverNode.config.systemd.services."vigil-camd@garage".serviceConfig;
  # The same without openFirewall: no port.
  discoverClosed = evalWith [
    {
      services.vigil = {
        enable = true;
        package = fakeDrv "vigil";
        hub.enable = false;
        sensord.enable = false;
        alertd.enable = false;
        reportd.enable = false;
        openFirewall = false;
        cameras = [
          {
            name = "garage";
            hub = "discover";
            keyFile = "/var/lib/vigil-secrets/garage-key";
          }
        ];
      };
    }
  ];
  # The hub with the beacon off, and with a directed broadcast.
  beaconOff = evalWith [
    example
    { services.vigil.recording.beacon = null; }
  ];
  beaconOffParsed = builtins.fromTOML (
    builtins.readFile beaconOff.config.environment.etc."vigil/vigil.toml".source
  );
  beaconLan = evalWith [
    example
    { services.vigil.recording.beacon = "192.168.1.255:7450"; }
  ];
  beaconLanParsed = builtins.fromTOML (
    builtins.readFile beaconLan.config.environment.etc."vigil/vigil.toml".source
  );
  # A camera on the hub's machine waiting for a beacon the hub does not send.
  badDiscover = evalWith [
    example
    {
      services.vigil.recording.beacon = null;
      services.vigil.cameras = lib.mkForce [
        {
          name = "porch";
          hub = "discover";
          keyFile = "/var/lib/vigil-secrets/porch-key";
        }
      ];
    }
  ];
  # Neither an address nor "discover": refused by the option's type.
  badHubValue = evalWith [
    example
    {
      services.vigil.cameras = lib.mkForce [
        {
          name = "porch";
          hub = "vigil-pi4";
          keyFile = "/var/lib/vigil-secrets/porch-key";
        }
      ];
    }
  ];
  refusedByType = cfg: !(builtins.tryEval (builtins.deepSeq cfg.environment.etc."vigil/vigil.toml".source true)).success;

  # Motion on video: the local camera with a threshold of its own, the
  # remote one with the default.
  motion = evalWith [
    example
    {
      services.vigil.cameras = lib.mkForce [
        {
          name = "porch";
          keyFile = "/var/lib/vigil-secrets/porch-key";
          motion = true;
          motionPercent = 5;
        }
        {
          name = "garage";
          local = false;
          keyFile = "/var/lib/vigil-secrets/garage-key";
          motion = true;
        }
      ];
    }
  ];
  motionParsed = builtins.fromTOML (
    builtins.readFile motion.config.environment.etc."vigil/vigil.toml".source
  );
  motionCamdToml = builtins.fromTOML (
    builtins.readFile motion.config.environment.etc."vigil/camd/porch.toml".source
  );
  motionCamera = name: lib.findFirst (x: x.name == name) null motionParsed.cameras;
  # "porch-motion" is a wired sensor's name; a camera name of 25 characters
  # makes a motion sensor name of 32.
  motionClash = evalWith [
    example
    {
      services.vigil.sensors = lib.mkAfter [
        {
          name = "porch-motion";
          kind = "motion";
          pin = 27;
        }
      ];
      services.vigil.cameras = lib.mkForce [
        {
          name = "porch";
          keyFile = "/var/lib/vigil-secrets/porch-key";
          motion = true;
        }
      ];
    }
  ];
  motionTooLong = evalWith [
    example
    {
      services.vigil.cameras = lib.mkForce [
        {
          name = "a-camera-name-of-25-chars";
          keyFile = "/var/lib/vigil-secrets/porch-key";
          motion = true;
        }
      ];
    }
  ];
  # The same sensor without motion on the camera: no clash.
  motionNoClash = evalWith [
    example
    {
      services.vigil.sensors = lib.mkAfter [
        {
          name = "porch-motion";
          kind = "motion";
          pin = 27;
        }
      ];
    }
  ];
  # Out of 1..100: refused by the option's type.
  motionBadPercent = evalWith [
    example
    {
      services.vigil.cameras = lib.mkForce [
        {
          name = "porch";
          keyFile = "/var/lib/vigil-secrets/porch-key";
          motion = true;
          motionPercent = 0;
        }
      ];
    }
  ];

  # Every camera on the hub itself: the camera port stays closed, camd dials
  # the loopback address (and the port recording.listen moved it to).
  allLocal = evalWith [
    example
    {
      services.vigil.cameras = lib.mkForce [
        {
          name = "porch";
          source = "v4l2";
          device = "/dev/video2";
          keyFile = "/var/lib/vigil-secrets/porch-key";
        }
      ];
      services.vigil.recording.listen = "[::]:7500";
    }
  ];
  allLocalParsed = builtins.fromTOML (
    builtins.readFile allLocal.config.environment.etc."vigil/vigil.toml".source
  );

  # Tuned [recording] and [events], and the old eventLog option renamed.
  tunedMedia = evalWith [
    example
    {
      services.vigil.recording = {
        listen = "192.168.1.10:7445";
        ringSecs = 60;
        preRollSecs = 15;
        slots = 4;
        semaphore = "/vigil-rec";
      };
      services.vigil.events.syncWindowMs = 50;
      services.vigil.eventLog.retention.maxAgeDays = 90;
    }
  ];
  tunedMediaParsed = builtins.fromTOML (
    builtins.readFile tunedMedia.config.environment.etc."vigil/vigil.toml".source
  );
  # What the hub and sensord apply on SIGHUP: sensors and [alarm].
  reloadOnly = evalWith [
    example
    {
      services.vigil.sensors = lib.mkAfter [
        {
          name = "back-door";
          kind = "door";
          pin = 27;
        }
      ];
      services.vigil.alarm.chime = false;
    }
  ];
  removedMaxBytes = evalWith [
    example
    { services.vigil.eventLog.retention.maxBytes = 1000000; }
  ];

  # The VM tests (nixos/tests): their nodes evaluate against the stubs, and
  # run.sh syntax-checks their Python test scripts.
  testFiles = {
    single-node = ../tests/single-node.nix;
    hub-camera = ../tests/hub-camera.nix;
    security = ../tests/security.nix;
    crash = ../tests/crash.nix;
    mqtt = ../tests/mqtt.nix;
  };
  tests = lib.mapAttrs (
    _: f:
    import f {
      pkgs = fakePkgs;
      vigilModule = ../modules/vigil.nix;
    }
  ) testFiles;
  testNodes = lib.concatMapAttrs (
    testName: test:
    lib.mapAttrs' (
      nodeName: node:
      lib.nameValuePair "${testName}/${nodeName}" (evalWith [
        node
        { services.vigil.package = fakeDrv "vigil"; }
      ]).config
    ) test.nodes
  ) tests;
  # The Pi configurations (their services.vigil part; nixos-hardware's and
  # the SD image's options are stubbed loosely).
  piStubs = {
    options.networking.hostName = mkOption { type = types.str; };
    options.hardware = mkOption {
      type = types.attrsOf types.anything;
      default = { };
    };
  };
  piEval =
    modules:
    (evalWith (
      [ piStubs ]
      ++ modules
      ++ [ { services.vigil.package = fakeDrv "vigil"; } ]
    )).config;
  piConfigs = lib.mapAttrs (_: f: piEval [ f ]) {
    vigil-pi4 = ../configurations/vigil-pi4.nix;
    vigil-camera = ../configurations/vigil-camera.nix;
  };
  # vigil-pi4 with its optional local broker.
  piBroker = piEval [
    ../configurations/vigil-pi4.nix
    { vigilPi4.mqttBroker.enable = true; }
  ];
  piBrokerListener = lib.head piBroker.services.mosquitto.listeners;

  # A node with Vigil: its files are valid (a node without it, such as the
  # MQTT test's broker, only passes its assertions).
  nodeOk =
    n:
    let
      problems = f: schemaProblems (etcToml n f);
    in
    failedAssertions n == [ ]
    && (n.services.vigil.enable -> problems "vigil/vigil.toml" == [ ])
    && (n.services.vigil.enable && n.services.vigil.mqtt.enable -> problems "vigil/mqttd.toml" == [ ]);

  # nixos/package.nix with a buildRustPackage that returns its arguments: the
  # version comes from Cargo.toml and the source set holds the workspace.
  packageArgs = import ../package.nix {
    inherit lib;
    rustPlatform.buildRustPackage = args: args;
    protobuf = fakeDrv "protobuf";
    pkg-config = fakeDrv "pkg-config";
    wrapGAppsNoGuiHook = fakeDrv "wrap-gapps-no-gui-hook";
    gst_all_1 = lib.genAttrs gstPackages fakeDrv;
    libcamera = fakeDrv "libcamera";
    stdenv.hostPlatform.isLinux = true;
  };
  gstPackages = [
    "gstreamer"
    "gst-plugins-base"
    "gst-plugins-good"
    "gst-plugins-bad"
    "gst-plugins-ugly"
    "gst-libav"
  ];
  packageInputs = map (d: d.name) packageArgs.buildInputs;
  # lib.fileset needs builtins.readFileType (Nix >= 2.14); older Nix skips it.
  canCheckSource = builtins ? readFileType;
  packageSource = if canCheckSource then builtins.readDir packageArgs.src else { };

  check = name: cond: if cond then "ok   ${name}" else "FAIL ${name}";
  checks = [
    (check "package: version ${packageArgs.version} from Cargo.toml, source = ${
      if canCheckSource then toString (lib.attrNames packageSource) else "(not checked: Nix < 2.14)"
    }" (
      packageArgs.version == (lib.importTOML ../../Cargo.toml).workspace.package.version
      && (
        canCheckSource
        -> (packageSource ? "Cargo.lock" && packageSource ? services && !(packageSource ? target))
      )
      && packageArgs.env.SQLX_OFFLINE == "true"
      && packageArgs.doCheck == false
    ))
    (check "package: GStreamer and its plugins, libcamera, protoc, pkg-config; no system sqlite; hub, camd and demo wrapped" (
      lib.all (n: lib.elem n packageInputs) (gstPackages ++ [ "libcamera" ])
      && !(lib.elem "sqlite" packageInputs)
      && map (d: d.name) packageArgs.nativeBuildInputs == [
        "protobuf"
        "pkg-config"
        "wrap-gapps-no-gui-hook"
      ]
      && packageArgs.dontWrapGApps
      && lib.all (p: lib.hasInfix "wrapGApp \"$out/bin/${p}\"" packageArgs.postFixup) [
        "vigil-hub"
        "vigil-camd"
        "vigil-demo"
      ]
      && !(lib.hasInfix "vigil-sensord" packageArgs.postFixup)
    ))
    (check "example passes every assertion" (failedAssertions c == [ ]))
    (check "defaults: pass every assertion, no warning, known keys" (
      failedAssertions defaults.config == [ ]
      && defaults.config.warnings == [ ]
      && schemaProblems (builtins.fromTOML defaultsText) == [ ]
    ))
    (check "example gives no warnings" (c.warnings == [ ]))
    (check "TOML keys are all known to the Rust side" (schemaProblems parsed == [ ]))
    (check "TOML round-trips" (builtins.fromTOML tomlText == parsed && parsed.sensors != [ ]))
    (check "no not-yet-read table by default" (
      !(parsed ? webhook || parsed ? event_log || parsed ? reports)
    ))
    (check "PIN file read through the hub's credentials" (
      (lib.head parsed.users).pin_hash_file == "/run/credentials/vigil-hub.service/pin-alice"
      && c.systemd.services.vigil-hub.serviceConfig.LoadCredential == [
        "pin-alice:/var/lib/vigil-secrets/alice-pin"
        "camera-key-porch:/var/lib/vigil-secrets/porch-key"
        "camera-key-garage:/var/lib/vigil-secrets/garage-key"
      ]
    ))
    (check "[recording], [events] and [alerts] are written, all ten, three and three keys, the defaults' values" (
      let
        d = builtins.fromTOML defaultsText;
      in
      parsed.recording == d.recording
      && parsed.events == d.events
      && parsed.alerts == d.alerts
      && lib.length (lib.attrNames d.recording) == 10
      && lib.length (lib.attrNames d.events) == 3
      && lib.length (lib.attrNames d.alerts) == 3
      && d.alerts.group == "vigil-alerts"
    ))
    (check "[[cameras]]: every key file is a credential of the unit that reads it" (
      (cameraNamed "porch").key_file == "/run/credentials/vigil-hub.service/camera-key-porch"
      && (cameraNamed "garage").key_file == "/run/credentials/vigil-hub.service/camera-key-garage"
      && !(cameraNamed "porch" ? key)
      && (cameraNamed "porch") == {
        name = "porch";
        source = "libcamera";
        width = 1280;
        height = 720;
        framerate = 15;
        encoder = "auto";
        bitrate_kbps = 2000;
        keyframe_secs = 1;
        hub = "127.0.0.1:7445";
        key_file = "/run/credentials/vigil-hub.service/camera-key-porch";
      }
      && lib.elem "camera-key-porch:/var/lib/vigil-secrets/porch-key" c.systemd.services.vigil-hub.serviceConfig.LoadCredential
      && lib.elem "camera-key-garage:/var/lib/vigil-secrets/garage-key" c.systemd.services.vigil-hub.serviceConfig.LoadCredential
      && (lib.head camdToml.cameras).key_file == "/run/credentials/vigil-camd@porch.service/camera-key"
      && camd.LoadCredential == [ "camera-key:/var/lib/vigil-secrets/porch-key" ]
      && !(lib.hasInfix "secrets" tomlText) && !(lib.hasInfix "secrets" camdTomlText)
    ))
    (check "camd config: its camera only, the same [recording] and [events]" (
      camdToml.recording == parsed.recording && camdToml.events == parsed.events
      && schemaProblems camdToml == [ ]
    ))
    (check "camd unit: --camera, video devices and group, LAN only, GStreamer cache, restarted (no SIGHUP) on a new config" (
      camd.ExecStart == "/nix/store/00000000000000000000000000000000-vigil/bin/vigil-camd --config /etc/vigil/camd/porch.toml --camera porch"
      && camd.PrivateDevices == false
      && camd.DevicePolicy == "closed"
      && lib.elem "char-video4linux rw" camd.DeviceAllow
      && lib.elem "char-media rw" camd.DeviceAllow
      && camd.SupplementaryGroups == [ "video" ]
      && camd.IPAddressDeny == "any"
      && camd.CacheDirectory == "vigil-camd"
      && camdUnit.environment.XDG_CACHE_HOME == "/var/cache/vigil-camd"
      && camd.User == "vigil-camd"
      && !(camd ? ExecReload)
      && camdUnit.reloadTriggers == [ ]
      && lib.length camdUnit.restartTriggers == 1
      && lib.elem "network-online.target" camdUnit.after
      && lib.elem "vigil-hub.service" camdUnit.after
      && camd.RestartPreventExitStatus == "78"
    ))
    (check "test-pattern camd: no devices, no video group (hub-camera/camera node)" (
      let
        sc = testNodes."hub-camera/camera".systemd.services."vigil-camd@garage".serviceConfig;
      in
      sc.PrivateDevices == true && sc.SupplementaryGroups or [ ] == [ ] && sc.ProcSubset == "pid"
    ))
    (check "SIGHUP only to hub and sensord (with restarts for what they do not reload); alertd and reportd restart" (
      c.systemd.services.vigil-hub.serviceConfig ? ExecReload
      && c.systemd.services.vigil-sensord.serviceConfig ? ExecReload
      && !(c.systemd.services.vigil-alertd.serviceConfig ? ExecReload)
      && !(c.systemd.services.vigil-reportd.serviceConfig ? ExecReload)
      && c.systemd.services.vigil-hub.reloadTriggers != [ ]
      # A sensor and [alarm] changed: a reload; [recording] changed: a restart.
      && reloadOnly.config.systemd.services.vigil-hub.restartTriggers == c.systemd.services.vigil-hub.restartTriggers
      && reloadOnly.config.systemd.services.vigil-hub.reloadTriggers != c.systemd.services.vigil-hub.reloadTriggers
      && reloadOnly.config.systemd.services.vigil-sensord.restartTriggers == c.systemd.services.vigil-sensord.restartTriggers
      # camd is restarted by a change to its camera, not by a new sensor.
      && reloadOnly.config.systemd.services."vigil-camd@porch".restartTriggers == camdUnit.restartTriggers
      && allLocal.config.systemd.services."vigil-camd@porch".restartTriggers != camdUnit.restartTriggers
      && tunedMedia.config.systemd.services.vigil-hub.restartTriggers != c.systemd.services.vigil-hub.restartTriggers
      && simulated.config.systemd.services.vigil-sensord.restartTriggers != c.systemd.services.vigil-sensord.restartTriggers

      && c.systemd.services.vigil-alertd.restartTriggers != [ ]
      && c.systemd.services.vigil-reportd.restartTriggers != [ ]
    ))
    (check "hub: camera port 7445 TCP and UDP open for the remote camera, GStreamer cache" (
      lib.sort lib.lessThan c.networking.firewall.allowedTCPPorts == [
        7443
        7445
      ]
      && c.networking.firewall.allowedUDPPorts == [ 7445 ]
      && c.systemd.services.vigil-hub.serviceConfig.CacheDirectory == "vigil"
      && c.systemd.services.vigil-hub.environment.XDG_CACHE_HOME == "/var/cache/vigil"
    ))
    (check "only local cameras: camera port closed, camd dials 127.0.0.1 on the moved port, v4l2 device kept" (
      allLocal.config.networking.firewall.allowedTCPPorts == [ 7443 ]
      && allLocal.config.networking.firewall.allowedUDPPorts == [ ]
      && (lib.head allLocalParsed.cameras).hub == "127.0.0.1:7500"
      && (lib.head allLocalParsed.cameras).device == "/dev/video2"
      && allLocalParsed.recording.listen == "[::]:7500"
      && failedAssertions allLocal.config == [ ]
    ))
    (check "no unit has PrivateIPC=, RemoveIPC= or PrivateUsers=, none hides /dev/shm or /dev/mqueue; a user each" (
      lib.all (
        s:
        let
          sc = s.serviceConfig;
          hidden = lib.concatLists (
            map (k: lib.toList (sc.${k} or [ ])) [
              "InaccessiblePaths"
              "TemporaryFileSystem"
              "ReadOnlyPaths"
            ]
          );
        in
        !(sc.PrivateIPC or false)
        && !(sc.RemoveIPC or false)
        && !(sc.PrivateUsers or false)
        && sc ? User
        && !(lib.any (p: lib.hasPrefix "/dev" (toString p)) hidden)
      ) (lib.attrValues c.systemd.services)
    ))
    (check "[recording] and [events] tuned; eventLog.retention.maxAgeDays renamed to events.maxAgeDays (with a warning)" (
      tunedMediaParsed.recording.listen == "192.168.1.10:7445"
      && tunedMediaParsed.recording.ring_secs == 60
      && tunedMediaParsed.recording.pre_roll_secs == 15
      && tunedMediaParsed.recording.slots == 4
      && tunedMediaParsed.recording.semaphore == "/vigil-rec"
      && tunedMediaParsed.events == {
        sync_window_ms = 50;
        max_age_days = 90;
        max_megabytes = 1024;
      }
      && schemaProblems tunedMediaParsed == [ ]
      && lib.length tunedMedia.config.warnings == 1
      && failedAssertions tunedMedia.config == [ ]
      && lib.length (failedAssertions removedMaxBytes.config) == 1
    ))
    (check "bad cameras refused (no key, key in the store, camera node without hub, pre-roll > ring)" (
      lib.length (failedAssertions badCameras.config) == 4
    ))
    (check "[recording] beacon: default broadcast allowed through the hub's IPAddressDeny=any; off; a directed broadcast" (
      let
        hub = c.systemd.services.vigil-hub.serviceConfig;
        offHub = beaconOff.config.systemd.services.vigil-hub.serviceConfig;
        lanHub = beaconLan.config.systemd.services.vigil-hub.serviceConfig;
      in
      hub.IPAddressDeny == "any"
      && lib.elem "255.255.255.255" hub.IPAddressAllow
      && lib.elem "192.168.0.0/16" hub.IPAddressAllow
      && lib.elem "AF_INET" hub.RestrictAddressFamilies
      && lib.elem "AF_INET6" hub.RestrictAddressFamilies
      && !(hub ? PrivateNetwork && hub.PrivateNetwork)
      # The beacon only goes out: no port for it on the hub.
      && !(lib.elem 7446 c.networking.firewall.allowedUDPPorts)
      && beaconOffParsed.recording.beacon == "off"
      && offHub.IPAddressAllow == c.systemd.services."vigil-camd@porch".serviceConfig.IPAddressAllow
      && !(lib.elem "255.255.255.255" offHub.IPAddressAllow)
      && beaconLanParsed.recording.beacon == "192.168.1.255:7450"
      && lib.elem "192.168.1.255" lanHub.IPAddressAllow
      && !(lib.elem "255.255.255.255" lanHub.IPAddressAllow)
      && schemaProblems beaconOffParsed == [ ]
      && schemaProblems beaconLanParsed == [ ]
      && failedAssertions beaconOff.config == [ ]
      && failedAssertions beaconLan.config == [ ]
      # Not in the camd unit: camd does not send the beacon.
      && !(lib.elem "255.255.255.255" camd.IPAddressAllow)
    ))
    (check "camera node with hub = \"discover\": hub and discovery_port written, UDP port open, camd LAN-only" (
      (lib.head discoverNodeToml.cameras) == {
        name = "garage";
        source = "libcamera";
        width = 1280;
        height = 720;
        framerate = 15;
        encoder = "auto";
        bitrate_kbps = 2000;
        keyframe_secs = 1;
        hub = "discover";
        discovery_port = 7447;
        key_file = "/run/credentials/vigil-camd@garage.service/camera-key";
      }
      && schemaProblems discoverNodeToml == [ ]
      && failedAssertions discoverNode.config == [ ]
      && discoverNode.config.warnings == [ ]
      && discoverNode.config.networking.firewall.allowedUDPPorts == [ 7447 ]
      && discoverNode.config.networking.firewall.allowedTCPPorts == [ ]
      && discoverCamd.IPAddressDeny == "any"
      && lib.elem "192.168.0.0/16" discoverCamd.IPAddressAllow
      && lib.elem "AF_INET" discoverCamd.RestrictAddressFamilies
      && (lib.head (builtins.fromTOML (
        builtins.readFile discoverClosed.config.environment.etc."vigil/vigil.toml".source
      )).cameras).discovery_port == 7446
      && discoverClosed.config.networking.firewall.allowedUDPPorts == [ ]
      # A camera that names the hub gets no discovery_port and opens nothing.
      && !(cameraNamed "porch" ? discovery_port)
      && testNodes."hub-camera/camera".networking.firewall.allowedUDPPorts == [ ]
    ))
    (check "discovery refused: a hub-machine camera waiting for no beacon; a hub that is neither host:port nor \"discover\"" (
      lib.length (failedAssertions badDiscover.config) == 1
      && refusedByType badHubValue.config
      && !(refusedByType c)
    ))
    (check "motion on video: motion = true writes motion and motion_percent (hub's file only); off writes neither; a clash or a long name refused" (
      motionCamera "porch" == (cameraNamed "porch") // {
        motion = true;
        motion_percent = 5;
      }
      && (motionCamera "garage").motion == true
      && (motionCamera "garage").motion_percent == 2
      && lib.all (x: !(x ? motion) && !(x ? motion_percent)) (parsed.cameras ++ camdToml.cameras)
      && schemaProblems motionParsed == [ ]
      && failedAssertions motion.config == [ ]
      && motion.config.warnings == [ ]
      # camd neither gets the keys nor restarts for them; the hub restarts.
      && motionCamdToml.cameras == camdToml.cameras
      && motion.config.systemd.services."vigil-camd@porch".restartTriggers == camdUnit.restartTriggers
      && motion.config.systemd.services.vigil-hub.restartTriggers != c.systemd.services.vigil-hub.restartTriggers
      && lib.length (failedAssertions motionClash.config) == 1
      && lib.hasInfix "porch-motion" (lib.head (failedAssertions motionClash.config))
      && lib.length (failedAssertions motionTooLong.config) == 1
      && failedAssertions motionNoClash.config == [ ]
      && refusedByType motionBadPercent.config
    ))
    (check "camd for the local camera only" (
      c.systemd.services ? "vigil-camd@porch" && !(c.systemd.services ? "vigil-camd@garage")
    ))
    (check "camd config holds only its camera" (map (x: x.name) camdToml.cameras == [ "porch" ]))
    (check "one uid per trust domain (hub and sensord share vigil), TMPDIR=/run/vigil; hooks as vigil-hook through alertd's sockets" (
      let
        sv = c.systemd.services;
        userOf = n: sv.${n}.serviceConfig.User;
        hook = sv."vigil-hook-log@";
        sock = c.systemd.sockets.vigil-hook-log;
        parsedHook = lib.head parsed.hooks;
      in
      userOf "vigil-hub" == "vigil"
      && userOf "vigil-sensord" == "vigil"
      && userOf "vigil-alertd" == "vigil-alertd"
      && userOf "vigil-reportd" == "vigil-reportd"
      && userOf "vigil-camd@porch" == "vigil-camd"
      && hook.serviceConfig.User == "vigil-hook"
      && hook.serviceConfig.StandardInput == "socket"
      && !(hook.serviceConfig ? Restart)
      && sock.socketConfig.Accept
      && sock.socketConfig.SocketUser == "vigil-alertd"
      && sock.socketConfig.SocketMode == "0600"
      && sock.listenStreams == [ "/run/vigil-hooks/log.sock" ]
      && parsedHook == {
        name = "log";
        socket = "/run/vigil-hooks/log.sock";
      }
      && lib.all (n: sv.${n}.environment.TMPDIR == "/run/vigil") [
        "vigil-hub"
        "vigil-sensord"
        "vigil-alertd"
        "vigil-reportd"
        "vigil-camd@porch"
      ]
      # The groups that share: alertd's (queue, hub.sock), the log's, reportd's.
      && lib.sort lib.lessThan c.users.users.vigil.extraGroups == [
        "vigil-alerts"
        "vigil-reportd"
      ]
      && c.users.users.vigil-alertd.extraGroups == [ "vigil-alerts" ]
      && c.users.users.vigil-reportd.extraGroups == [ "vigil-log" ]
      && c.users.users.vigil-hook.extraGroups == [ ]
      && parsed.alerts.group == "vigil-alerts"
      && parsed.runtime.reports_dir == "/var/lib/vigil-reportd"
      && sv.vigil-reportd.serviceConfig.StateDirectory == "vigil-reportd"
      && !(sv.vigil-hub.serviceConfig ? StateDirectory)
      && lib.elem "/var/lib/vigil" sv.vigil-hub.serviceConfig.ReadWritePaths
    ))
    (check "every unit has LimitNOFILE=, MemoryMax= and TasksMax=; units without a network, AF_UNIX only" (
      lib.all (
        s:
        s.serviceConfig ? LimitNOFILE && s.serviceConfig ? MemoryMax && s.serviceConfig ? TasksMax
      ) (lib.attrValues c.systemd.services)
      && c.systemd.services.vigil-sensord.serviceConfig.PrivateNetwork
      && c.systemd.services.vigil-sensord.serviceConfig.RestrictAddressFamilies == [ "AF_UNIX" ]
      && c.systemd.services.vigil-reportd.serviceConfig.PrivateNetwork
      && c.systemd.services.vigil-reportd.serviceConfig.RestrictAddressFamilies == [ "AF_UNIX" ]
    ))
    (check "sensord gets the gpio group on hardware" (
      c.systemd.services.vigil-sensord.serviceConfig.SupplementaryGroups == [ "gpio" ]
    ))
    (check "sensord gets no devices when simulated" (
      simulated.config.systemd.services.vigil-sensord.serviceConfig.DeviceAllow == [ ]
      && simulated.config.systemd.services.vigil-sensord.serviceConfig.SupplementaryGroups == [ ]
      && (builtins.fromTOML (builtins.readFile simulated.config.environment.etc."vigil/vigil.toml".source))
      .gpio.backend == "simulated"
    ))
    (check "bad config refused (pin clash, 24h modes, store secret)" (
      lib.length (failedAssertions bad.config) == 3
    ))
    (check "VM test nodes evaluate, pass assertions, valid TOML (${toString (lib.attrNames testNodes)})" (
      lib.all nodeOk (lib.attrValues testNodes)
    ))
    (check "Pi configurations evaluate, pass assertions, valid TOML (vigil-pi4, vigil-camera)" (
      lib.all nodeOk (lib.attrValues piConfigs)
      && piConfigs.vigil-pi4.systemd.services ? "vigil-camd@porch"
      && piConfigs.vigil-camera.systemd.services ? "vigil-camd@garage"
    ))
    (check "camera node runs vigil-camd@garage only" (
      lib.attrNames (
        lib.filterAttrs (
          n: _: lib.hasPrefix "vigil" n && !(lib.hasPrefix "vigil-test-" n)
        ) testNodes."hub-camera/camera".systemd.services
      ) == [ "vigil-camd@garage" ]
      && testNodes."hub-camera/camera".networking.firewall.allowedTCPPorts == [ ]
      && testNodes."hub-camera/camera".networking.firewall.allowedUDPPorts == [ ]
      && lib.elem 7445 testNodes."hub-camera/hub".networking.firewall.allowedTCPPorts
      && lib.elem 7445 testNodes."hub-camera/hub".networking.firewall.allowedUDPPorts
    ))
    (check "hub and camd are LAN-only, alertd is not" (
      c.systemd.services.vigil-hub.serviceConfig.IPAddressDeny == "any"
      && c.systemd.services."vigil-camd@porch".serviceConfig.IPAddressDeny == "any"
      && !(c.systemd.services.vigil-alertd.serviceConfig ? IPAddressDeny)
    ))
    (check "[alarm] and the duress PIN only when set, [grpc] always, valid, no warning" (
      tunedParsed.alarm == {
        require_pin_to_arm = true;
        modes.away = {
          exit_delay_secs = 5;
          entry_delay_secs = 5;
        };
      }
      && tunedParsed.grpc == {
        listen = "[::]:7443";
        hostnames = [ "vigil-pi4.local" ];
      }
      && (lib.head tunedParsed.users).duress_pin_hash_file
        == "/run/credentials/vigil-hub.service/duress-pin-alice"
      && lib.elem "duress-pin-alice:/var/lib/vigil-secrets/alice-duress"
        tuned.config.systemd.services.vigil-hub.serviceConfig.LoadCredential
      && schemaProblems tunedParsed == [ ]
      && tuned.config.warnings == [ ]
      && !(parsed ? alarm)
      && parsed.grpc == { listen = "[::]:7443"; }
    ))
    (check "[webhook] only when set, read by alertd: no warning" (
      futureParsed ? webhook
      && futureParsed.webhook.secret_file == "/run/credentials/vigil-alertd.service/webhook-secret"
      && futureParsed.webhook.format == "json"
      && schemaProblems futureParsed == [ ]
      && future.config.warnings == [ ]
      && !(parsed ? webhook)
    ))
    (check "[mqtt] only with mqtt.enable: none, no bridge, no vigil-mqtt user by default" (
      !(parsed ? mqtt)
      && !(c.systemd.services ? vigil-mqttd)
      && !(c.environment.etc ? "vigil/mqttd.toml")
      && !(c.users.users ? vigil-mqtt)
      && !(c.systemd.services.vigil-sensord.serviceConfig ? LoadCredential)
    ))
    (check "[mqtt]: the shared file names sensord's credentials, /etc/vigil/mqttd.toml the bridge's; otherwise the same; known keys" (
      mqttShared.mqtt == mqttTable "vigil-sensord"
      && mqttdToml.mqtt == mqttTable "vigil-mqttd"
      && removeAttrs mqttdToml [ "mqtt" ] == removeAttrs mqttShared [ "mqtt" ]
      && schemaProblems mqttShared == [ ]
      && schemaProblems mqttdToml == [ ]
      && failedAssertions mqttC == [ ]
      && mqttC.warnings == [ ]
      && !(lib.hasInfix "secrets" mqttdText)
    ))
    (check "a Zigbee sensor: source and friendly_name, no pin, pull or active; GPIO sensors unchanged" (
      lib.last mqttShared.sensors == {
        name = "garage-door";
        kind = "door";
        source = "zigbee2mqtt";
        friendly_name = "garage_contact";
        supervision_secs = 7200;
      }
      && lib.init mqttShared.sensors == parsed.sensors
      && lib.all (x: !(x ? source) && !(x ? friendly_name)) parsed.sensors
    ))
    (check "vigil-mqttd: own uid, StateDirectory vigil-mqtt, hardened, LAN only, AF_UNIX/INET/INET6, credentials, on-failure but not after 78, after the network and the hub" (
      let
        sc = mqttd.serviceConfig;
      in
      sc.User == "vigil-mqtt"
      && sc.Group == "vigil-mqtt"
      && sc.ExecStart == "/nix/store/00000000000000000000000000000000-vigil/bin/vigil-mqttd --config /etc/vigil/mqttd.toml"
      && sc.StateDirectory == "vigil-mqtt"
      && sc.StateDirectoryMode == "0700"
      && sc.ProtectSystem == "strict"
      && sc.ProtectHome
      && sc.PrivateTmp
      && sc.PrivateDevices
      && sc.ProcSubset == "pid"
      && sc.DevicePolicy == "closed"
      && sc.NoNewPrivileges
      && sc.CapabilityBoundingSet == ""
      && sc.AmbientCapabilities == ""
      && sc.MemoryDenyWriteExecute
      && sc.RestrictAddressFamilies == [
        "AF_UNIX"
        "AF_INET"
        "AF_INET6"
      ]
      && lib.head sc.SystemCallFilter == "@system-service"
      && sc.IPAddressDeny == "any"
      && lib.elem "192.168.0.0/16" sc.IPAddressAllow
      && lib.elem "localhost" sc.IPAddressAllow
      && !(sc.PrivateNetwork or false)
      && sc.Restart == "on-failure"
      && sc.RestartPreventExitStatus == "78"
      && sc.MemoryMax == "128M"
      && sc ? LimitNOFILE
      && sc ? TasksMax
      && sc.LoadCredential == mqttLoad
      && !(sc ? ExecReload)
      && !(sc ? ReadWritePaths)
      && !(sc ? SupplementaryGroups)
      && mqttd.environment.TMPDIR == "/tmp"
      && lib.all (u: lib.elem u mqttd.after && lib.elem u mqttd.wants) [
        "network-online.target"
        "vigil-hub.service"
      ]
      && mqttd.wantedBy == [ "vigil.target" ]
      && mqttd.partOf == [ "vigil.target" ]
      && mqttd.reloadTriggers == [ ]
      && lib.length mqttd.restartTriggers == 1
      && mqttC.users.users.vigil-mqtt.isSystemUser
      && mqttC.users.users.vigil-mqtt.group == "vigil-mqtt"
      && mqttC.users.users.vigil-mqtt.extraGroups == [ ]
      && mqttC.users.groups ? vigil-mqtt
      # Every other unit keeps Restart=always.
      && lib.all (n: mqttC.systemd.services.${n}.serviceConfig.Restart == "always") (
        lib.filter (n: n != "vigil-mqttd" && mqttC.systemd.services.${n}.serviceConfig ? Restart) (
          lib.attrNames mqttC.systemd.services
        )
      )
    ))
    (check "sensord with a Zigbee sensor: the network (LAN only) and the broker's files as credentials" (
      let
        sc = mqttC.systemd.services.vigil-sensord.serviceConfig;
      in
      sc.PrivateNetwork == false
      && sc.IPAddressDeny == "any"
      && lib.elem "AF_INET" sc.RestrictAddressFamilies
      && sc.LoadCredential == mqttLoad
      # reportd keeps no network.
      && mqttC.systemd.services.vigil-reportd.serviceConfig.PrivateNetwork
      # The bridge alone (no Zigbee sensor): sensord stays offline.
      && mqttTopics.config.systemd.services.vigil-sensord.serviceConfig.PrivateNetwork
      && mqttTopics.config.systemd.services.vigil-sensord.serviceConfig.RestrictAddressFamilies == [ "AF_UNIX" ]
    ))
    (check "restarts: [mqtt] and a Zigbee sensor do not restart the hub or sensord (a reload); a topic restarts the bridge, a sensor does not" (
      mqttC.systemd.services.vigil-hub.restartTriggers == c.systemd.services.vigil-hub.restartTriggers
      && mqttC.systemd.services.vigil-sensord.restartTriggers == c.systemd.services.vigil-sensord.restartTriggers
      && mqttC.systemd.services.vigil-hub.reloadTriggers != c.systemd.services.vigil-hub.reloadTriggers
      && mqttMoreSensors.config.systemd.services.vigil-mqttd.restartTriggers == mqttd.restartTriggers
      && mqttRetopic.config.systemd.services.vigil-mqttd.restartTriggers != mqttd.restartTriggers
    ))
    (check "[mqtt] topics, an IPv6 broker, the hub's address; plaintext and a wildcard listener; a node without the hub" (
      let
        t = (mqttdTomlOf mqttTopics.config).mqtt;
        p = (mqttdTomlOf mqttPlain.config).mqtt;
        n = (mqttdTomlOf mqttNoHub.config).mqtt;
      in
      t == {
        broker = "[fd00::2]:8883";
        ca_file = "/run/credentials/vigil-mqttd.service/mqtt-ca";
        base_topic = "home/vigil";
        discovery_prefix = "";
        zigbee2mqtt_topic = "z2m";
        hub = "192.168.1.10:7443";
        hub_credentials = "/var/lib/vigil-mqtt/hub";
      }
      && failedAssertions mqttTopics.config == [ ]
      && mqttTopics.config.systemd.services.vigil-mqttd.serviceConfig.LoadCredential == [
        "mqtt-ca:/etc/vigil/mqtt-ca.pem"
      ]
      && mqttTopics.config.services.vigil.mqtt.brokerAcl == {
        vigil = [
          "readwrite home/vigil/#"
          "read z2m/#"
          "write z2m/+/set"
        ];
        homeassistant = [
          "read home/vigil/#"
          "read homeassistant/#"
          "write homeassistant/status"
          "write home/vigil/+/alarm/set"
          "write home/vigil/+/panic/set"
          "write home/vigil/+/camera/+/snapshot/set"
        ];
        zigbee2mqtt = [ "readwrite z2m/#" ];
      }
      && p == {
        broker = "localhost:1883";
        insecure_plaintext = true;
        hub = "127.0.0.1:7500";
        hub_credentials = "/var/lib/vigil-mqtt/hub";
      }
      && failedAssertions mqttPlain.config == [ ]
      && mqttPlain.config.systemd.services.vigil-mqttd.serviceConfig.LoadCredential == [ ]
      && !(n ? hub)
      && failedAssertions mqttNoHub.config == [ ]
      && !(lib.elem "vigil-hub.service" mqttNoHub.config.systemd.services.vigil-mqttd.after)
      && lib.attrNames (
        lib.filterAttrs (name: _: lib.hasPrefix "vigil" name) mqttNoHub.config.systemd.services
      ) == [ "vigil-mqttd" ]
    ))
    (check "bad MQTT configurations refused (no broker, no CA, certificate without key, secret in the store; Zigbee: wiring, no name, a pin-less GPIO sensor, a named one, one device twice, no broker; active set; bad topic and broker)" (
      lib.length (failedAssertions mqttBad.config) == 4
      && lib.length (failedAssertions zigbeeBad.config) == 6
      && lib.length (failedAssertions zigbeeActive.config) == 1
      && refusedByType mqttBadTopic.config
      && refusedByType mqttBadBroker.config
    ))
    (check "services.vigil.mqtt.brokerAcl is docs/mqtt.md's ACL for users vigil, homeassistant, zigbee2mqtt${
      lib.optionalString (docAcl == null) " (docs/mqtt.md has no tested ACL block: not compared)"
    }" (
      docAcl == null
      || lib.all (u: (docAcl.${u} or null) == c.services.vigil.mqtt.brokerAcl.${u}) [
        "vigil"
        "homeassistant"
        "zigbee2mqtt"
      ]
    ))
    (check "Pi configuration with vigilPi4.mqttBroker: Mosquitto on 8883 (TLS, a password file and brokerAcl per user, 1 MiB packets), firewall, the bridge on localhost; off by default" (
      nodeOk piBroker
      && piBroker.services.mosquitto.enable
      && piBroker.services.mosquitto.settings.max_packet_size == 1048576
      && piBrokerListener.port == 8883
      && piBrokerListener.settings == {
        cafile = "/var/lib/mosquitto/tls/ca.pem";
        certfile = "/var/lib/mosquitto/tls/server.pem";
        keyfile = "/var/lib/mosquitto/tls/server.key";
        allow_anonymous = false;
      }
      && lib.attrNames piBrokerListener.users == [
        "homeassistant"
        "vigil"
        "zigbee2mqtt"
      ]
      && lib.all (
        u:
        piBrokerListener.users.${u}.acl == piBroker.services.vigil.mqtt.brokerAcl.${u}
        && piBrokerListener.users.${u}.passwordFile == "/var/lib/vigil-secrets/mqtt-${u}-password"
      ) (lib.attrNames piBrokerListener.users)
      && lib.elem 8883 piBroker.networking.firewall.allowedTCPPorts
      && (mqttdTomlOf piBroker).mqtt.broker == "localhost:8883"
      && piBroker.systemd.services.vigil-mqttd.serviceConfig.LoadCredential == [
        "mqtt-ca:/var/lib/mosquitto/tls/ca.pem"
        "mqtt-credentials:/var/lib/vigil-secrets/mqtt-credentials"
      ]
      && !piConfigs.vigil-pi4.services.mosquitto.enable
      && !(piConfigs.vigil-pi4.systemd.services ? vigil-mqttd)
    ))
    (check "MQTT VM test: the broker node runs Mosquitto with brokerAcl and no Vigil; the hub node the bridge, sensord with the broker's files" (
      let
        b = testNodes."mqtt/broker";
        h = testNodes."mqtt/hub";
        listener = lib.head b.services.mosquitto.listeners;
      in
      b.services.mosquitto.enable
      && !b.services.vigil.enable
      && lib.all (u: listener.users.${u}.acl == b.services.vigil.mqtt.brokerAcl.${u}) [
        "vigil"
        "homeassistant"
        "zigbee2mqtt"
      ]
      && lib.elem 8883 b.networking.firewall.allowedTCPPorts
      && h.systemd.services ? vigil-mqttd
      && h.systemd.services.vigil-sensord.serviceConfig.LoadCredential == h.systemd.services.vigil-mqttd.serviceConfig.LoadCredential
      && (mqttdTomlOf h).mqtt.broker == "broker:8883"
      && lib.elem "vigil-mqttd.service" h.systemd.services.vigil-test-mqtt-credentials.before
    ))
  ];
in
{
  report = lib.concatStringsSep "\n" (
    [
      "# checks"
    ]
    ++ checks
    ++ [
      ""
      "# refused (expected): "
    ]
    ++ map (m: "  - ${m}") (failedAssertions bad.config)
    ++ map (m: "  - ${m}") (failedAssertions badCameras.config)
    ++ map (m: "  - ${m}") (failedAssertions removedMaxBytes.config)
    ++ map (m: "  - ${m}") (failedAssertions badDiscover.config)
    ++ map (m: "  - ${m}") (failedAssertions motionClash.config)
    ++ map (m: "  - ${m}") (failedAssertions motionTooLong.config)
    ++ map (m: "  - ${m}") (failedAssertions mqttBad.config)
    ++ map (m: "  - ${m}") (failedAssertions zigbeeBad.config)
    ++ map (m: "  - ${m}") (failedAssertions zigbeeActive.config)
    ++ [
      ""
      "# warnings with webhook.url set:"
    ]
    ++ map (m: "  - ${m}") future.config.warnings
    ++ [
      ""
      "# warnings with the old eventLog.retention.maxAgeDays set:"
    ]
    ++ map (m: "  - ${m}") tunedMedia.config.warnings
    ++ [
      ""
      "# /etc/vigil/vigil.toml"
      tomlText
      "# /etc/vigil/camd/porch.toml (the same, but [[cameras]])"
      camdTomlText
      "# camera node with hub = \"discover\": [[cameras]] of /etc/vigil/camd/garage.toml, firewall"
      (builtins.toJSON discoverNodeToml.cameras)
      "allowedUDPPorts = ${toString discoverNode.config.networking.firewall.allowedUDPPorts}"
      "# motion = true on both cameras: [[cameras]] of /etc/vigil/vigil.toml"
      (builtins.toJSON motionParsed.cameras)
      "# with services.vigil.mqtt and a Zigbee door: /etc/vigil/mqttd.toml's [mqtt], the Zigbee [[sensors]] entry"
      (builtins.toJSON mqttdToml.mqtt)
      (builtins.toJSON (lib.last mqttShared.sensors))
      "# services.vigil.mqtt.brokerAcl (default topics)"
      (builtins.toJSON c.services.vigil.mqtt.brokerAcl)
      ""
      "# systemd.tmpfiles.rules"
    ]
    ++ c.systemd.tmpfiles.rules
    ++ [
      ""
      "# boot.kernel.sysctl"
    ]
    ++ lib.mapAttrsToList (k: v: "${k} = ${toString v}") c.boot.kernel.sysctl
    ++ [
      ""
      "# networking.firewall"
      "allowedTCPPorts = ${toString c.networking.firewall.allowedTCPPorts}"
      "allowedUDPPorts = ${toString c.networking.firewall.allowedUDPPorts}"
      ""
      "# users"
      "users.users: ${toString (lib.attrNames c.users.users)}; users.groups: ${toString (lib.attrNames c.users.groups)}"
      ""
      "# services.udev.extraRules"
      c.services.udev.extraRules
      "# units"
    ]
    ++ lib.mapAttrsToList renderUnit c.systemd.services
    ++ [
      "# with services.vigil.mqtt and a Zigbee door"
      (renderUnit "vigil-mqttd" mqttd)
      (renderUnit "vigil-sensord" mqttC.systemd.services.vigil-sensord)
    ]
  );

  allOk = lib.all (l: lib.hasPrefix "ok" l) checks;

  inherit defaultsToml;

  testScripts = lib.mapAttrs (_: t: t.testScript) tests;
}
