# The Vigil workspace as one package: every binary of the Cargo workspace
# (vigil-hub, vigil-sensord, vigil-camd, vigil-alertd, vigil-reportd, vigilctl,
# vigil-demo) lands in $out/bin, wrapped so GStreamer finds its plugins.
#
# Called with `pkgs.callPackage ./nixos/package.nix { }` (flake.nix, and the
# default of `services.vigil.package`), so it cross-compiles with whatever
# `pkgs` the caller has.
{
  lib,
  rustPlatform,
  protobuf,
  pkg-config,
  wrapGAppsNoGuiHook,
  gst_all_1,
  libcamera,
  sqlite,
  stdenv,
}:

let
  workspace = lib.importTOML ../Cargo.toml;
in
rustPlatform.buildRustPackage {
  pname = "vigil";
  inherit (workspace.workspace.package) version;

  # Only what cargo needs: a change to docs/ or nixos/ does not rebuild Rust.
  src = lib.fileset.toSource {
    root = ../.;
    fileset = lib.fileset.unions (
      [
        ../Cargo.toml
        ../Cargo.lock
        ../services
        ../tests
      ]
      # Present later in the project, or maybe never: prost's protos, sqlx's
      # offline query data (`cargo sqlx prepare --workspace`), cargo config.
      ++ map lib.fileset.maybeMissing [
        ../proto
        ../.sqlx
        ../.cargo
      ]
    );
  };

  cargoLock.lockFile = ../Cargo.lock;

  nativeBuildInputs = [
    protobuf # protoc for prost-build / tonic-build
    pkg-config
    wrapGAppsNoGuiHook # sets GST_PLUGIN_SYSTEM_PATH_1_0 in the wrappers
  ];

  buildInputs =
    [ sqlite ]
    ++ (with gst_all_1; [
      gstreamer
      gst-plugins-base # videotestsrc, videoconvert, appsink
      gst-plugins-good # v4l2src, v4l2h264enc (Pi hardware H.264), rtp
      gst-plugins-bad # h264parse, mpegtsmux
      gst-plugins-ugly # x264enc (software H.264)
      gst-libav
    ])
    # libcamerasrc is a GStreamer plugin shipped by libcamera itself.
    ++ lib.optional stdenv.hostPlatform.isLinux libcamera;

  env = {
    # sqlx checks queries at compile time against the committed .sqlx/ data.
    SQLX_OFFLINE = "true";
  };

  # Tests run in the flake's checks (checks.<system>.cargo-test), not here, so
  # that an image build never waits for the test suite.
  doCheck = false;

  meta = {
    description = "Vigil home-security appliance: alarm hub, GPIO sensors, cameras, alerts, reports";
    homepage = "https://github.com/vigil-home/vigil";
    license = lib.licenses.asl20;
    platforms = lib.platforms.linux;
    mainProgram = "vigilctl";
  };
}
