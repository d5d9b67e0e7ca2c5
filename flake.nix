{
  description = "Vigil: a home-security appliance for the Raspberry Pi on NixOS";

  inputs = {
    nixpkgs.url = "github:NixOS/nixpkgs/nixos-26.05";
    nixos-hardware.url = "github:NixOS/nixos-hardware";
    # nixos-hardware's modules do not use its own nixpkgs (a nixos-unstable
    # tarball); one nixpkgs for everything.
    nixos-hardware.inputs.nixpkgs.follows = "nixpkgs";
  };

  outputs =
    {
      self,
      nixpkgs,
      nixos-hardware,
    }:
    let
      inherit (nixpkgs) lib;

      systems = [
        "x86_64-linux"
        "aarch64-linux"
      ];
      forAllSystems = f: lib.genAttrs systems (system: f system nixpkgs.legacyPackages.${system});

      # ---------------------------------------------------------- the package
      vigilFor = pkgs: pkgs.callPackage ./nixos/package.nix { };

      # clippy and the test suite reuse the package's source, vendored crates
      # and build inputs, and only swap the phases.
      cargoChecks =
        pkgs:
        let
          vigil = vigilFor pkgs;
        in
        {
          clippy = vigil.overrideAttrs (old: {
            pname = "vigil-clippy";
            nativeBuildInputs = old.nativeBuildInputs ++ [ pkgs.clippy ];
            buildPhase = ''
              runHook preBuild
              cargo clippy --workspace --all-targets --offline --profile release -- --deny warnings
              runHook postBuild
            '';
            doCheck = false;
            installPhase = "touch $out";
            dontFixup = true;
          });

          cargo-test = vigil.overrideAttrs (old: {
            pname = "vigil-tests";
            doCheck = true;
            cargoTestFlags = [ "--workspace" ];
            # The camera tests run real pipelines (their plugins come from
            # GST_PLUGIN_SYSTEM_PATH_1_0, which the gstreamer setup hook
            # exports from buildInputs) and check a clip with
            # gst-discoverer-1.0.
            nativeCheckInputs = (old.nativeCheckInputs or [ ]) ++ [
              (lib.getBin pkgs.gst_all_1.gst-plugins-base)
            ];
            # The test binaries are what matter; keep the output small.
            installPhase = "touch $out";
            dontFixup = true;
          });
        };

      # ------------------------------------------------------ the Pi systems
      sdImageModule = "${nixpkgs}/nixos/modules/installer/sd-card/sd-image-aarch64.nix";

      mkPi =
        extraModules:
        lib.nixosSystem {
          modules = [
            { nixpkgs.hostPlatform = "aarch64-linux"; }
            sdImageModule
            nixos-hardware.nixosModules.raspberry-pi-4
            self.nixosModules.default
            ./nixos/configurations/common-pi.nix
          ]
          ++ extraModules;
        };

      # The same system, compiled on an x86_64 machine (no binfmt needed).
      crossFromX86 =
        system: system.extendModules { modules = [ { nixpkgs.buildPlatform = "x86_64-linux"; } ]; };

      sdImage = system: system.config.system.build.sdImage;

      vmTests =
        pkgs:
        let
          args = {
            inherit pkgs;
            vigilModule = self.nixosModules.default;
          };
        in
        {
          vm-single-node = import ./nixos/tests/single-node.nix args;
          vm-hub-camera = import ./nixos/tests/hub-camera.nix args;
          vm-security = import ./nixos/tests/security.nix args;
          vm-crash = import ./nixos/tests/crash.nix args;
          vm-mqtt = import ./nixos/tests/mqtt.nix args;
        };
    in
    {
      overlays.default = final: _prev: { vigil = vigilFor final; };

      packages = forAllSystems (
        system: pkgs:
        {
          default = vigilFor pkgs;
          vigil = vigilFor pkgs;
        }
        // lib.optionalAttrs (system == "aarch64-linux") {
          # Built natively (an aarch64 builder, or binfmt emulation).
          sd-image-pi4 = sdImage self.nixosConfigurations.vigil-pi4;
          sd-image-camera = sdImage self.nixosConfigurations.vigil-camera;
        }
        // lib.optionalAttrs (system == "x86_64-linux") {
          # Cross-compiled on x86_64 for the aarch64 Pi.
          sd-image-pi4-cross = sdImage self.nixosConfigurations.vigil-pi4-cross;
          sd-image-camera-cross = sdImage self.nixosConfigurations.vigil-camera-cross;
        }
      );

      apps = forAllSystems (
        system: _pkgs:
        let
          vigil = self.packages.${system}.default;
        in
        {
          demo = {
            type = "app";
            program = "${vigil}/bin/vigil-demo";
            meta.description = "Run the whole of Vigil on this machine with simulated sensors";
          };
          vigilctl = {
            type = "app";
            program = "${vigil}/bin/vigilctl";
            meta.description = "Command-line client of the Vigil hub";
          };
          default = self.apps.${system}.demo;
        }
      );

      devShells = forAllSystems (
        system: pkgs: {
          default = pkgs.mkShell {
            inputsFrom = [ self.packages.${system}.default ];
            packages = with pkgs; [
              cargo
              rustc
              clippy
              rustfmt
              rust-analyzer
              sqlx-cli
              sqlite-interactive
              gst_all_1.gstreamer # gst-launch-1.0, gst-inspect-1.0
              libargon2 # `argon2` to hash PINs
              nixfmt
            ];
            env.SQLX_OFFLINE = "true";
          };
        }
      );

      nixosModules.default = ./nixos/modules/vigil.nix;

      nixosConfigurations = rec {
        # Hub, sensors and a local camera on a Raspberry Pi 4.
        vigil-pi4 = mkPi [ ./nixos/configurations/vigil-pi4.nix ];
        # A camera-only node that streams to the hub.
        vigil-camera = mkPi [ ./nixos/configurations/vigil-camera.nix ];
        # The same two, cross-compiled on x86_64-linux (for `nixos-rebuild
        # --target-host` from a laptop without aarch64 emulation).
        vigil-pi4-cross = crossFromX86 vigil-pi4;
        vigil-camera-cross = crossFromX86 vigil-camera;
      };

      checks = forAllSystems (
        system: pkgs:
        {
          build = self.packages.${system}.default;
        }
        // cargoChecks pkgs
        // lib.optionalAttrs (system == "x86_64-linux") (
          vmTests pkgs
          // {
            # Both Pi systems evaluate (instantiating the .drv is enough; the
            # aarch64 build itself is packages.*.sd-image-*).
            pi-configurations-evaluate = pkgs.writeText "vigil-pi-configurations" (
              lib.concatMapStringsSep "\n" (
                n: builtins.unsafeDiscardStringContext self.nixosConfigurations.${n}.config.system.build.toplevel.drvPath
              ) (lib.attrNames self.nixosConfigurations)
            );
          }
        )
      );

      formatter = forAllSystems (_: pkgs: pkgs.nixfmt);
    };
}
