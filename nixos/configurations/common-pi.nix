# Shared by every Vigil Raspberry Pi: boot firmware, SSH, Nix, image name.
# Imported by flake.nix together with nixos-hardware's raspberry-pi-4 module
# and nixpkgs' sd-image-aarch64.nix.
{
  config,
  lib,
  pkgs,
  ...
}:

{
  system.stateVersion = "26.05";

  # nixos-hardware's firmware module fills the SD image's FAT partition
  # (GPU firmware, config.txt, device trees); U-Boot then reads extlinux.conf.
  hardware.raspberry-pi.firmware.uboot.enable = true;

  # sd-image/vigil-pi4-<nixos label>-aarch64-linux.img.zst and the like. The
  # SD-image builder names the file after image.baseName (image.fileName only
  # follows it).
  image.baseName = "${config.networking.hostName}-${config.system.nixos.label}-${pkgs.stdenv.hostPlatform.system}";

  # Administration is over SSH with keys only. Put your public key here (or
  # in a module of your own) BEFORE building the image; see docs/nixos.md.
  services.openssh = {
    enable = true;
    settings = {
      PasswordAuthentication = false;
      KbdInteractiveAuthentication = false;
      PermitRootLogin = "prohibit-password";
    };
  };
  users.users.root.openssh.authorizedKeys.keys = [
    # "ssh-ed25519 AAAA... you@laptop"
  ];

  warnings = lib.optional (config.users.users.root.openssh.authorizedKeys.keys == [ ]) ''
    vigil: no SSH key in users.users.root.openssh.authorizedKeys.keys; after
    flashing, only the console will let you in (see docs/nixos.md).
  '';

  # `nixos-rebuild switch --flake .#... --target-host` needs nothing on the
  # Pi, but flakes are handy when working on the Pi itself.
  nix.settings.experimental-features = [
    "nix-command"
    "flakes"
  ];

  # `argon2` to hash user PINs on the device (docs/nixos.md, first boot).
  environment.systemPackages = [ pkgs.libargon2 ];
}
