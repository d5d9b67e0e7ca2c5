# The main Vigil box: a Raspberry Pi 4 with reed switches and a PIR sensor on
# GPIO, a siren on a relay, and a Pi camera. It also expects the camera of the
# node described by vigil-camera.nix. The secrets under /var/lib/vigil-secrets
# are made on the Pi after the first boot (docs/nixos.md).
{ ... }:

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
