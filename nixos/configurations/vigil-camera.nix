# A camera-only node: one camera, streaming to the hub it discovers on the
# LAN (UDP 7445), over the camera link (TCP 7444). No hub, GPIO or alerts.
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
      }
    ];
  };
}
