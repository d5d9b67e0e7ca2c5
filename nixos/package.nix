# The Vigil workspace as one package: every binary of the Cargo workspace
# (vigil-hub, vigil-sensord, vigil-camd, vigil-alertd, vigil-reportd,
# vigil-mqttd, vigilctl, vigil-demo) lands in $out/bin. The three that run GStreamer pipelines are
# wrapped so that GStreamer finds its plugins:
#   vigil-camd  capture and H.264 encoding (videotestsrc, libcamerasrc, v4l2src,
#               videoconvert, videoscale, x264enc or v4l2h264enc, h264parse, appsink)
#   vigil-hub   MP4 clips (appsrc, h264parse, mp4mux, filesink) and JPEG
#               snapshots (h264parse, avdec_h264, videoconvert, jpegenc, appsink)
#   vigil-demo  runs both of them
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
  stdenv,
}:

let
  workspace = lib.importTOML ../Cargo.toml;

  # The binaries that load GStreamer plugins (see above).
  gstreamerPrograms = [
    "vigil-hub"
    "vigil-camd"
    "vigil-demo"
  ];
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
      # prost's protos, sqlx's offline query data (`scripts/sqlx-prepare`) and
      # cargo config; maybeMissing so that a checkout without one still
      # evaluates (the build then says what is missing).
      ++ map lib.fileset.maybeMissing [
        ../proto
        ../.sqlx
        ../.cargo
      ]
    );
  };

  cargoLock.lockFile = ../Cargo.lock;

  strictDeps = true;

  nativeBuildInputs = [
    protobuf # protoc, for tonic-prost-build (services/vigil-proto/build.rs)
    pkg-config # gstreamer-sys and friends find their libraries with it
    # Gathers GST_PLUGIN_SYSTEM_PATH_1_0 from the buildInputs below (the
    # gstreamer setup hook) into gappsWrapperArgs; wrapGApp uses them.
    wrapGAppsNoGuiHook
  ];

  buildInputs =
    (with gst_all_1; [
      gstreamer # libgstreamer-1.0 (linked); coreelements: queue, filesink
      gst-plugins-base # libgstapp-1.0, libgstvideo-1.0 (linked); appsrc/appsink,
      # videotestsrc, videoconvert, videoscale
      gst-plugins-good # v4l2src, v4l2h264enc (Pi hardware H.264), mp4mux, jpegenc
      gst-plugins-bad # h264parse (videoparsersbad)
      gst-plugins-ugly # x264enc (software H.264)
      gst-libav # avdec_h264 (snapshots)
    ])
    # libcamerasrc is a GStreamer plugin shipped by libcamera itself.
    ++ lib.optional stdenv.hostPlatform.isLinux libcamera;
  # No sqlite: rusqlite and sqlx share libsqlite3-sys with its `bundled`
  # feature, so SQLite is compiled into the binaries.

  env = {
    # sqlx checks its queries at compile time against the committed .sqlx/
    # data instead of a live database.
    SQLX_OFFLINE = "true";
  };

  # Wrap only the programs that use GStreamer: the others keep their own
  # process name (no `.vigil-sensord-wrapped` in ps) and start without a shell.
  dontWrapGApps = true;
  postFixup = lib.concatMapStrings (p: ''
    wrapGApp "$out/bin/${p}"
  '') gstreamerPrograms;

  # Tests run in the flake's checks (checks.<system>.cargo-test), not here, so
  # that an image build never waits for the test suite.
  doCheck = false;

  passthru = {
    inherit gstreamerPrograms;
  };

  meta = {
    description = "Vigil home-security appliance: alarm hub, GPIO sensors, cameras, alerts, reports";
    homepage = "https://github.com/vigil-home/vigil";
    license = lib.licenses.asl20;
    platforms = lib.platforms.linux;
    mainProgram = "vigilctl";
  };
}
