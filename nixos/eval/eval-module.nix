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
    writeShellScript = name: _text: "/nix/store/00000000000000000000000000000000-${name}";
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
                      sc: (sc ? Type -> serviceTypes ? ${sc.Type}) && (sc ? Restart -> sc.Restart == "always")
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
    ++ unknown schema.telemetry (t.telemetry or { });

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
  piConfigs = lib.mapAttrs (
    _: f:
    (evalWith [
      piStubs
      f
      { services.vigil.package = fakeDrv "vigil"; }
    ]).config
  ) {
    vigil-pi4 = ../configurations/vigil-pi4.nix;
    vigil-camera = ../configurations/vigil-camera.nix;
  };

  nodeOk =
    n:
    failedAssertions n == [ ]
    && schemaProblems (builtins.fromTOML (builtins.readFile n.environment.etc."vigil/vigil.toml".source)) == [ ];

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
  );

  allOk = lib.all (l: lib.hasPrefix "ok" l) checks;

  inherit defaultsToml;

  testScripts = lib.mapAttrs (_: t: t.testScript) tests;
}
