# (b) Two machines: the hub, and a camera node streaming a test pattern to it.
#
#   nix build .#checks.x86_64-linux.vm-hub-camera   (needs KVM)
#
# The camera node finds the hub by UDP discovery on 7445 and connects to the
# camera link on 7444/tcp; both firewalls are the module's. ASSUMED (see
# common.nix): `vigilctl status --local` prints one line per camera with
# "online"/"offline"; clips land under /var/lib/vigil/clips/<camera>/.
{ pkgs, vigilModule }:

let
  common = import ./common.nix { inherit pkgs; };
in
pkgs.testers.runNixOSTest {
  name = "vigil-hub-camera";

  nodes = {
    hub =
      { ... }:
      {
        imports = [ (common.hubNode { inherit vigilModule; }) ];
        services.vigil.cameras = [
          {
            # Captured by the camera node; the hub only expects it.
            name = "garage";
            local = false;
          }
        ];
      };

    camera =
      { pkgs, ... }:
      {
        imports = [ vigilModule ];
        virtualisation.memorySize = 1536;
        virtualisation.cores = 2;

        services.vigil = {
          enable = true;
          hub.enable = false;
          sensord.enable = false;
          alertd.enable = false;
          reportd.enable = false;
          cameras = [
            {
              name = "garage";
              source = "test"; # videotestsrc, x264enc: no camera in a VM
              width = 640;
              height = 360;
              framerate = 10;
            }
          ];
          logFilter = "info,vigil=debug";
        };
        environment.systemPackages = [ pkgs.netcat ];
      };
  };

  testScript =
    common.helpers
    + ''
      def camera_state(state, timeout=180):
          hub.wait_until_succeeds(
              f"vigilctl status --local | grep -Ei 'garage.*{state}'", timeout=timeout
          )


      start_all()
      hub.wait_for_unit("vigil-hub.service")
      pair_root(hub)
      hub.wait_for_open_port(7444)
      camera.wait_for_unit("vigil-camd@garage.service")

      with subtest("the camera node runs camd only"):
          for unit in ["vigil-hub", "vigil-sensord", "vigil-alertd", "vigil-reportd"]:
              camera.fail(f"systemctl cat {unit}.service")
          camera.succeed("grep -q 'name = \"garage\"' /etc/vigil/camd/garage.toml")

      with subtest("the hub's firewall lets the camera link through"):
          camera.wait_until_succeeds("nc -z -w 2 hub 7444")
          camera.fail("nc -z -w 2 hub 22 || nc -z -w 2 hub 9")  # nothing else is open

      with subtest("the camera is discovered and goes online"):
          camera_state("online")

      with subtest("cut the network: the hub marks the camera offline, then online again"):
          camera.block()
          camera_state("offline")
          camera.unblock()
          camera_state("online")

      with subtest("camd restarts and reconnects by itself"):
          camera.succeed("systemctl kill --signal=SIGKILL vigil-camd@garage.service")
          camera.wait_until_succeeds("systemctl is-active vigil-camd@garage.service")
          camera_state("online")

      with subtest("an alarm records a clip of the remote camera (ASSUMED path)"):
          hub.succeed("vigilctl arm away")
          wait_mode(hub, "armedAway")
          hub.succeed("vigil-sensord sim set back-door open")
          wait_mode(hub, "triggered")
          hub.wait_until_succeeds("ls /var/lib/vigil/clips/garage/ | grep -q .", timeout=120)
          hub.succeed(f"vigilctl disarm --pin {PIN}")
    '';
}
