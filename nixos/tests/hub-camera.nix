# (b) Two machines: the hub, and a camera node streaming a test pattern to it.
#
#   nix build .#checks.x86_64-linux.vm-hub-camera   (needs KVM)
#
# The camera node's vigil-camd@garage dials the hub's camera port (7445/tcp)
# and sends signed heartbeats to the same port over UDP; the hub's firewall is
# the module's (it opens 7445 because the hub lists garage with
# `local = false`). Both machines hold the same key file, made at boot by
# common.cameraKeyService. What is checked: camd only on the camera node, keys
# only through credentials, online, an alarm records a clip, a cut network and
# a killed camd come back, and a crashed camera machine gives camera_offline,
# then camera_online when it is back (events and the fault alert).
{ pkgs, vigilModule }:

let
  common = import ./common.nix { inherit pkgs; };

  camera = {
    name = "garage";
    source = "test"; # videotestsrc and x264enc: no camera in a VM
    width = 640;
    height = 360;
    framerate = 10;
    keyFile = common.cameraKeyFile "garage";
  };
in
pkgs.testers.runNixOSTest {
  name = "vigil-hub-camera";

  nodes = {
    hub =
      { ... }:
      {
        imports = [ (common.hubNode { inherit vigilModule; }) ];
        services.vigil = {
          cameras = [
            # Captured by the camera node; the hub checks its key and records it.
            (camera // { local = false; })
          ];
          # Quick offline detection and short clips keep the test short.
          recording = {
            offlineAfterSecs = 5;
            preRollSecs = 3;
            postCaptureSecs = 4;
          };
        };
        systemd.services.vigil-test-camera-key = common.cameraKeyService {
          camera = "garage";
          units = [ "vigil-hub.service" ];
        };
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
            (camera // { hub = "hub:7445"; })
          ];
          logFilter = "info,vigil=debug";
        };
        systemd.services.vigil-test-camera-key = common.cameraKeyService {
          camera = "garage";
          units = [ "vigil-camd@garage.service" ];
        };
        environment.systemPackages = [ pkgs.netcat ];
      };
  };

  testScript =
    common.helpers
    + ''
      KEY = "${common.testCameraKey}"

      start_all()
      hub.wait_for_unit("vigil-hub.service")
      hub.wait_for_open_port(7445)
      pair_root(hub)
      camera.wait_for_unit("vigil-camd@garage.service")

      with subtest("the camera node runs camd only, with its key from its credentials"):
          for unit in ["vigil-hub", "vigil-sensord", "vigil-alertd", "vigil-reportd"]:
              camera.fail(f"systemctl cat {unit}.service")
          toml = camera.succeed("cat /etc/vigil/camd/garage.toml")
          assert 'name = "garage"' in toml, toml
          assert 'hub = "hub:7445"' in toml, toml
          assert 'key_file = "/run/credentials/vigil-camd@garage.service/camera-key"' in toml, toml
          pid = camera.succeed("systemctl show -P MainPID vigil-camd@garage.service").strip()
          camera.succeed(f"nsenter -t {pid} -m test -s /run/credentials/vigil-camd@garage.service/camera-key")
          hub.succeed(
              "grep -q 'key_file = \"/run/credentials/vigil-hub.service/camera-key-garage\"' /etc/vigil/vigil.toml"
          )
          # The key is in no generated file (it is in this test's script only
          # because two VMs must share it).
          for m in [hub, camera]:
              m.fail(f"grep -Rl {KEY} /etc/vigil/")

      with subtest("the hub's firewall lets the camera port through, and no other"):
          camera.wait_until_succeeds("nc -z -w 2 hub 7445")
          camera.fail("nc -z -w 2 hub 7444")  # the old camera-link port is gone
          camera.fail("nc -z -w 2 hub 22 || nc -z -w 2 hub 9")

      with subtest("the camera goes online"):
          wait_camera(hub, "garage", True)
          wait_event(hub, "camera_online", "garage")

      with subtest("an alarm records a clip of the remote camera"):
          time.sleep(4)  # a full pre-roll in the hub's ring
          hub.succeed("vigilctl panic")
          wait_mode(hub, "triggered", timeout=60)
          hub.wait_until_succeeds(
              "vigilctl --json clips | jq -e 'select(.camera == \"garage\" and .reason == \"alarm\")'",
              timeout=120,
          )
          print(hub.succeed("vigilctl clips"))
          hub.succeed("ls /var/lib/vigil/clips/ | grep -E '^garage-.*-alarm[.]mp4$'")
          hub.succeed("test -e /dev/shm/sem.vigil-recording")  # the recording slots
          hub.succeed(f"vigilctl disarm --pin {PIN}")
          wait_mode(hub, "disarmed")

      with subtest("cut the network: the hub marks the camera offline, then online again"):
          camera.block()
          wait_camera(hub, "garage", False)
          camera.unblock()
          wait_camera(hub, "garage", True)

      with subtest("camd killed: systemd restarts it and it reconnects by itself"):
          camera.succeed("systemctl kill --signal=SIGKILL vigil-camd@garage.service")
          camera.wait_until_succeeds("systemctl is-active vigil-camd@garage.service")
          wait_camera(hub, "garage", True)

      with subtest("the camera machine crashes: camera_offline, event and fault alert"):
          mark = last_seq(hub)
          camera.crash()
          offline = wait_event(hub, "camera_offline", "garage", after=mark)
          print(offline)
          hub.wait_until_succeeds(
              "jq -e 'select(.kind == \"camera_offline\" and .priority == \"fault\")' "
              "/var/lib/vigil-hooks/test-hook.jsonl",
              timeout=60,
          )
          assert not camera_online(hub, "garage")

      with subtest("the camera machine is back: camera_online"):
          camera.start()
          camera.wait_for_unit("vigil-camd@garage.service")
          wait_event(hub, "camera_online", "garage", after=offline["seq"], timeout=300)
          wait_camera(hub, "garage", True)
    '';
}
