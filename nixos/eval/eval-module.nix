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
#  * the example configuration (two sensors, a camera) evaluates, passes the
#    module's assertions and gives no warnings;
#  * the generated TOML parses (builtins.fromTOML), round-trips, and uses only
#    the keys services/vigil-core/src/config/file.rs accepts (it has
#    deny_unknown_fields);
#  * bad configurations are refused by the assertions, and the not-yet-read
#    tables appear only when their options leave the defaults.
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

  stubs =
    { config, ... }:
    {
      options = {
        assertions = mkOption {
          type = types.listOf types.unspecified;
          default = [ ];
        };
        warnings = listOpt types.str;

        users.users = mkOption {
          default = { };
          type = types.attrsOf (
            types.submodule {
              options = {
                isSystemUser = mkOption {
                  type = types.bool;
                  default = false;
                };
                isNormalUser = mkOption {
                  type = types.bool;
                  default = false;
                };
                group = mkOption {
                  type = types.str;
                  default = "";
                };
                description = mkOption {
                  type = types.str;
                  default = "";
                };
                extraGroups = listOpt types.str;
              };
            }
          );
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

        systemd.targets = mkOption {
          default = { };
          type = types.attrsOf (
            types.submodule {
              options = {
                description = mkOption {
                  type = types.str;
                  default = "";
                };
                wantedBy = listOpt types.str;
              };
            }
          );
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
        }
        {
          name = "garage";
          local = false;
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

  failedAssertions = cfg: map (a: a.message) (lib.filter (a: !a.assertion) cfg.assertions);

  tomlText = builtins.readFile c.environment.etc."vigil/vigil.toml".source;
  parsed = builtins.fromTOML tomlText;

  # The keys file.rs accepts (deny_unknown_fields), table by table, as of the
  # [alarm]/[grpc] change to services/vigil-core/src/config/file.rs.
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
      "webhook"
      "telemetry"
    ];
    alerts = [
      "queue"
      "depth"
      "msg_size"
      "cooldown_secs"
      "hook_timeout_ms"
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
    ];
    hooks = [
      "name"
      "command"
      "args"
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
    + "StartLimitIntervalSec=${toString s.startLimitIntervalSec}\n"
    + "[Service]\n"
    + lib.concatStrings (lib.mapAttrsToList (k: v: "Environment=\"${k}=${toString v}\"\n") s.environment)
    + lib.concatStrings (lib.mapAttrsToList line s.serviceConfig);

  camdToml = builtins.fromTOML (builtins.readFile c.environment.etc."vigil/camd/porch.toml".source);

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
    gst_all_1 = lib.genAttrs [
      "gstreamer"
      "gst-plugins-base"
      "gst-plugins-good"
      "gst-plugins-bad"
      "gst-plugins-ugly"
      "gst-libav"
    ] fakeDrv;
    libcamera = fakeDrv "libcamera";
    sqlite = fakeDrv "sqlite";
    stdenv.hostPlatform.isLinux = true;
  };
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
    (check "example passes every assertion" (failedAssertions c == [ ]))
    (check "example gives no warnings" (c.warnings == [ ]))
    (check "TOML keys are all known to file.rs" (schemaProblems parsed == [ ]))
    (check "TOML round-trips" (builtins.fromTOML tomlText == parsed && parsed.sensors != [ ]))
    (check "no not-yet-read table by default" (
      !(parsed ? webhook || parsed ? event_log || parsed ? reports)
    ))
    (check "PIN file read through the hub's credentials" (
      (lib.head parsed.users).pin_hash_file == "/run/credentials/vigil-hub.service/pin-alice"
      && c.systemd.services.vigil-hub.serviceConfig.LoadCredential == [
        "pin-alice:/var/lib/vigil-secrets/alice-pin"
      ]
    ))
    (check "camd for the local camera only" (
      c.systemd.services ? "vigil-camd@porch" && !(c.systemd.services ? "vigil-camd@garage")
    ))
    (check "camd config holds only its camera" (map (x: x.name) camdToml.cameras == [ "porch" ]))
    (check "every unit runs as vigil with TMPDIR=/run/vigil" (
      lib.all (s: s.serviceConfig.User == "vigil" && s.environment.TMPDIR == "/run/vigil") (
        lib.attrValues c.systemd.services
      )
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
      lib.attrNames (lib.filterAttrs (n: _: lib.hasPrefix "vigil" n) testNodes."hub-camera/camera".systemd.services)
      == [ "vigil-camd@garage" ]
      && testNodes."hub-camera/camera".networking.firewall.allowedTCPPorts == [ ]
    ))
    (check "hub and camd are LAN-only, alertd is not" (
      c.systemd.services.vigil-hub.serviceConfig.IPAddressDeny == "any"
      && c.systemd.services."vigil-camd@porch".serviceConfig.IPAddressDeny == "any"
      && !(c.systemd.services.vigil-alertd.serviceConfig ? IPAddressDeny)
    ))
    (check "[alarm], [grpc] and the duress PIN only when set, valid, no warning" (
      tunedParsed.alarm == {
        require_pin_to_arm = true;
        modes.away = {
          exit_delay_secs = 5;
          entry_delay_secs = 5;
        };
      }
      && tunedParsed.grpc == { hostnames = [ "vigil-pi4.local" ]; }
      && (lib.head tunedParsed.users).duress_pin_hash_file
        == "/run/credentials/vigil-hub.service/duress-pin-alice"
      && lib.elem "duress-pin-alice:/var/lib/vigil-secrets/alice-duress"
        tuned.config.systemd.services.vigil-hub.serviceConfig.LoadCredential
      && schemaProblems tunedParsed == [ ]
      && tuned.config.warnings == [ ]
      && !(parsed ? alarm || parsed ? grpc)
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
    ++ [
      ""
      "# warnings with webhook.url set:"
    ]
    ++ map (m: "  - ${m}") future.config.warnings
    ++ [
      ""
      "# /etc/vigil/vigil.toml"
      tomlText
      "# /etc/vigil/camd/porch.toml differs only in [[cameras]]"
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

  testScripts = lib.mapAttrs (_: t: t.testScript) tests;
}
