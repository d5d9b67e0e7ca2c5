# A camera-only node: one camera, streaming to the hub (vigil-pi4.nix) over
# the camera link: camd dials the hub's camera port, 7445, over TCP for the
# video and sends signed heartbeats to the same port over UDP. No hub, GPIO,
# alerts or reports, and no open port unless a camera uses hub = "discover" (then UDP 7446 for the beacon): camd is the client.
#
# The camera's key must be the same file on both machines, made once on the
# hub and copied here (docs/nixos.md, adding a camera node):
#   install -d -m 0700 /var/lib/vigil-secrets
#   (umask 077; head -c 32 /dev/urandom | base64 > /var/lib/vigil-secrets/garage-key)
{ ... }:

{
  networking.hostName = "vigil-camera";

  services.vigil = {
    enable = true;
    hub.enable = false;
    sensord.enable = false;
    alertd.enable = false;
    reportd.enable = false;

    cameras = [
      {
        name = "garage";
        source = "libcamera";
        # The Pi's hardware H.264 encoder (v4l2h264enc); "auto" would pick it too.
        encoder = "v4l2";
        # The hub's name (or address) on the LAN and its recording.listen port.
        hub = "vigil-pi4:7445";
        # Never in the Nix store: systemd hands camd a private copy.
        keyFile = "/var/lib/vigil-secrets/garage-key";
      }
    ];
  };
}
