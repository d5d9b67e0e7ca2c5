#!/usr/bin/env bash
# A full round trip through a REAL Home Assistant 2024.3.3 (ha_driver.py),
# with mosquitto_pub/mosquitto_sub standing in for the Vigil bridge: the
# discovery configs vigil-mqttd publishes (services/vigil-mqtt/src/discovery.rs)
# become entities, states and availability follow, Home Assistant's commands
# arrive on the command topics, an empty config removes an entity, and Home
# Assistant's log has no complaint about our discovery payloads.
# The Rust end-to-end tests mirror this script. See README.md.
#
#   VIGIL_HA_VENV=DIR   the venv made by ./setup (default /opt/vigil-ha)
#   VIGIL_HA_KEEP=1     keep the work dir (/tmp/ha-check.*) even on success
#
# Exit 0 when every check passed; prints what it sees on stderr.
set -euo pipefail

here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
venv=${VIGIL_HA_VENV:-/opt/vigil-ha}
work=$(mktemp -d /tmp/ha-check.XXXXXX)
start=$(date +%s)

H=0123456789abcdef0123456789abcdef
NODE=vigil_$H
V=vigil/$H

say() { echo "ha-check: $*" >&2; }
ok() { echo "ha-check: ok   $*" >&2; }
fail() {
  echo "ha-check: FAIL $*" >&2
  exit 1
}
PATH=$PATH:/usr/sbin

[ -x "$venv/bin/python" ] || fail "no venv at $venv; run $here/setup first"
for t in mosquitto mosquitto_pub mosquitto_sub mosquitto_passwd openssl curl jq; do
  command -v "$t" >/dev/null || fail "$t not found (run $here/setup)"
done

broker_pid= drv_pid= sub_pid=
cleanup() {
  rc=$?
  set +e
  if [ -n "${DRV[1]:-}" ]; then eval "exec ${DRV[1]}>&-"; fi # driver stops HA
  if [ -n "$drv_pid" ]; then
    for _ in $(seq 1 150); do kill -0 "$drv_pid" 2>/dev/null || break; sleep 0.1; done
    kill "$drv_pid" 2>/dev/null
    wait "$drv_pid" 2>/dev/null
  fi
  [ -n "$sub_pid" ] && kill "$sub_pid" 2>/dev/null
  [ -n "$broker_pid" ] && kill "$broker_pid" 2>/dev/null
  wait 2>/dev/null
  if [ $rc -eq 0 ] && [ -z "${VIGIL_HA_KEEP:-}" ]; then
    rm -rf "$work"
  else
    say "work dir kept: $work (HA log: $work/ha/home-assistant.log, driver: $work/driver.log)"
  fi
  if [ $rc -eq 0 ]; then say "PASSED in $(( $(date +%s) - start )) s"; else say "FAILED (exit $rc)"; fi
}
trap cleanup EXIT

# ---------------------------------------------------------------- PKI + broker
cd "$work"
mkdir broker
openssl req -x509 -newkey rsa:2048 -nodes -days 3650 -subj "/CN=Vigil test CA" \
  -addext "basicConstraints=critical,CA:TRUE" -addext "keyUsage=critical,keyCertSign,cRLSign" \
  -keyout broker/ca.key -out broker/ca.crt 2>/dev/null
openssl req -newkey rsa:2048 -nodes -subj "/CN=localhost" \
  -keyout broker/server.key -out broker/server.csr 2>/dev/null
printf '%s\n' "basicConstraints=CA:FALSE" "keyUsage=critical,digitalSignature,keyEncipherment" \
  "extendedKeyUsage=serverAuth" "subjectAltName=IP:127.0.0.1,DNS:localhost" > broker/server.ext
openssl x509 -req -in broker/server.csr -CA broker/ca.crt -CAkey broker/ca.key -CAcreateserial \
  -days 3650 -extfile broker/server.ext -out broker/server.crt 2>/dev/null
CA=$work/broker/ca.crt
openssl rand -hex 12 > ha.pass
openssl rand -hex 12 > vigil.pass
mosquitto_passwd -b -c broker/passwd homeassistant "$(cat ha.pass)"
mosquitto_passwd -b broker/passwd vigil "$(cat vigil.pass)"
PORT=$(python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')
cat > broker/mosquitto.conf <<EOF
persistence false
allow_anonymous false
password_file $work/broker/passwd
log_dest file $work/broker/mosquitto.log
log_type error
log_type warning
log_type notice
log_type information
user $(id -un)
listener $PORT 127.0.0.1
cafile $CA
certfile $work/broker/server.crt
keyfile $work/broker/server.key
EOF
mosquitto -c broker/mosquitto.conf 2>>broker/mosquitto.log &
broker_pid=$!
for _ in $(seq 1 50); do
  (exec 3<>"/dev/tcp/127.0.0.1/$PORT") 2>/dev/null && break
  kill -0 "$broker_pid" 2>/dev/null || fail "mosquitto exited: $(cat broker/mosquitto.log)"
  sleep 0.1
done
ok "mosquitto on 127.0.0.1:$PORT (TLS, password file)"

# The bridge's client: TLS verified against our CA, user vigil.
mq=(-h 127.0.0.1 -p "$PORT" --cafile "$CA" -u vigil -P "$(cat vigil.pass)")
pub() { mosquitto_pub "${mq[@]}" -q 1 "$@"; }

# ---------------------------------------------------------------- Home Assistant
coproc DRV {
  exec "$venv/bin/python" "$here/ha_driver.py" --config-dir "$work/ha" \
    --broker-host 127.0.0.1 --broker-port "$PORT" --ca-file "$CA" \
    --username homeassistant --password-file "$work/ha.pass" 2>"$work/driver.log"
}
drv_pid=$DRV_PID
ready=
read -r -t 300 -u "${DRV[0]}" ready || {
  cat "$work/driver.log" >&2
  fail "ha_driver.py did not get ready"
}
URL=$(jq -r .url <<<"$ready")
TOKEN=$(jq -r .token <<<"$ready")
ok "Home Assistant ready at $URL ($(tail -n 1 "$work/driver.log" | sed 's/^ha_driver: //'))"
HALOG=$work/ha/home-assistant.log

api() { # api METHOD PATH [JSON]
  curl -sS -f -X "$1" -H "Authorization: Bearer $TOKEN" -H "Content-Type: application/json" \
    ${3:+--data "$3"} "$URL$2"
}
state() { # state ENTITY -> its state, or "absent"
  local out
  out=$(curl -sS -w '\n%{http_code}' -H "Authorization: Bearer $TOKEN" "$URL/api/states/$1")
  case "${out##*$'\n'}" in
    200) jq -r .state <<<"${out%$'\n'*}" ;;
    404) echo absent ;;
    *) fail "GET /api/states/$1: $out" ;;
  esac
}
attr() { api GET "/api/states/$1" | jq -c -r ".attributes.$2"; }
template() { api POST /api/template "$(jq -n --arg t "$1" '{template: $t}')"; }
wait_state() { # wait_state ENTITY WANT [SECONDS]
  local got
  for _ in $(seq 1 $(( ${3:-20} * 10 ))); do
    got=$(state "$1")
    [ "$got" = "$2" ] && { ok "$1 is $2"; return 0; }
    sleep 0.1
  done
  fail "$1 is '$got', not '$2'"
}
expect_eq() { # expect_eq WHAT GOT WANT
  [ "$2" = "$3" ] || fail "$1: got '$2', want '$3'"
  ok "$1 = $3"
}

# Everything HA publishes on the bridge's command topics, one "topic payload" a line.
stdbuf -oL mosquitto_sub "${mq[@]}" -q 1 -v -t "$V/+/set" -t "$V/camera/+/snapshot/set" \
  -t "$V/check/+" >> commands.log 2> commands.err & # >>: the file is truncated below
sub_pid=$!
for _ in $(seq 1 100); do
  pub -t "$V/check/sub" -m ready
  grep -q "^$V/check/sub ready" commands.log && break
  sleep 0.1
done
grep -q "^$V/check/sub ready" commands.log || fail "mosquitto_sub did not subscribe: $(cat commands.err)"
: > commands.log

call() { # call DOMAIN/SERVICE JSON -> waits for HA to answer the call
  api POST "/api/services/$1" "$2" >/dev/null || fail "service $1 $2 failed"
}
next_command() { # next_command -> the next line HA published (waits up to 10 s)
  local n=$1
  for _ in $(seq 1 100); do
    [ "$(wc -l < commands.log)" -gt "$n" ] && { sed -n "$((n + 1))p" commands.log; return 0; }
    sleep 0.1
  done
  echo "(nothing)"
}
command_of() { # command_of DOMAIN/SERVICE JSON -> what HA published for it
  local n
  n=$(wc -l < commands.log)
  call "$1" "$2"
  next_command "$n"
}

# ---------------------------------------------------------------- discovery
dev=$(jq -c -n --arg n "$NODE" '{identifiers: [$n], name: "Vigil 01234567",
  manufacturer: "Vigil", model: "Vigil alarm hub", sw_version: "0.1.0"}')
base() { # base NAME OBJECT -> the keys every config has (discovery.rs `base`)
  jq -c -n --arg name "$1" --arg o "$2" --arg node "$NODE" --argjson dev "$dev" --arg v "$V" \
    '{name: $name, unique_id: ($node + "_" + $o), object_id: ("vigil_" + $o),
      device: $dev, availability: [{topic: ($v + "/availability")}]}'
}
config() { # config COMPONENT OBJECT JSON
  pub -r -t "homeassistant/$1/$NODE/$2/config" -m "$3"
}
config alarm_control_panel alarm "$(base Alarm alarm | jq -c --arg v "$V" '. + {
  state_topic: ($v + "/alarm/state"), command_topic: ($v + "/alarm/set"),
  command_template: "{\"action\": \"{{ action }}\", \"code\": \"{{ code }}\"}",
  json_attributes_topic: ($v + "/alarm/status"), code: "REMOTE_CODE",
  code_arm_required: false, code_disarm_required: true, code_trigger_required: false,
  supported_features: ["arm_home", "arm_away", "arm_night", "arm_vacation",
                       "arm_custom_bypass", "trigger"]}')"
config binary_sensor front-door "$(base front-door front-door | jq -c --arg v "$V" '. + {
  state_topic: ($v + "/sensor/front-door/state"), device_class: "door"}')"
config binary_sensor front-door_fault "$(base "front-door fault" front-door_fault | jq -c --arg v "$V" '. + {
  state_topic: ($v + "/sensor/front-door/fault"), device_class: "problem",
  entity_category: "diagnostic"}')"
config camera camera_porch "$(base porch camera_porch | jq -c --arg v "$V" '. + {
  topic: ($v + "/camera/porch/snapshot")}')"
config button camera_porch_snapshot "$(base "porch snapshot" camera_porch_snapshot | jq -c --arg v "$V" '. + {
  command_topic: ($v + "/camera/porch/snapshot/set"), payload_press: "PRESS"}')"
config button panic "$(base Panic panic | jq -c --arg v "$V" '. + {
  command_topic: ($v + "/panic/set"), payload_press: "PRESS", icon: "mdi:alarm-light"}')"
config sensor last_event "$(base "Last event" last_event | jq -c --arg v "$V" '. + {
  state_topic: ($v + "/last_event"), value_template: "{{ value_json.message[:255] }}",
  json_attributes_topic: ($v + "/last_event"), icon: "mdi:history"}')"
pub -r -t "$V/availability" -m online
pub -r -t "$V/alarm/state" -m disarmed
pub -r -t "$V/alarm/status" -m '{"mode":"disarmed","state":"disarmed","open":[],"faults":[]}'
pub -r -t "$V/sensor/front-door/state" -m OFF
pub -r -t "$V/sensor/front-door/fault" -m OFF
pub -r -t "$V/last_event" -m '{"seq":7,"kind":"disarmed","message":"Disarmed by alice"}'
"$venv/bin/python" -c 'import PIL.Image as I, sys; I.new("RGB", (8, 8), (200, 30, 30)).save(sys.argv[1], "JPEG")' porch.jpg
pub -r -t "$V/camera/porch/snapshot" -f porch.jpg

ALARM=alarm_control_panel.vigil_alarm
DOOR=binary_sensor.vigil_front_door
FAULT=binary_sensor.vigil_front_door_fault
CAMERA=camera.vigil_camera_porch
SNAP=button.vigil_camera_porch_snapshot
PANIC=button.vigil_panic
LAST=sensor.vigil_last_event

wait_state "$ALARM" disarmed
say "entities of device '$(template "{{ device_attr('$ALARM', 'name') }}")':"
api GET /api/states | jq -r --argjson ids "$(template "{{ device_entities(device_id('$ALARM')) | tojson }}")" \
  '.[] | select(.entity_id | IN($ids[])) | "  \(.entity_id) = \(.state)  (\(.attributes.friendly_name))"' >&2
wait_state "$DOOR" off
wait_state "$FAULT" off
wait_state "$LAST" "Disarmed by alice"
wait_state "$PANIC" unknown
wait_state "$SNAP" unknown
wait_state "$CAMERA" idle

# Names and attributes.
expect_eq "$ALARM friendly_name" "$(attr "$ALARM" friendly_name)" "Vigil 01234567 Alarm"
expect_eq "$DOOR friendly_name" "$(attr "$DOOR" friendly_name)" "Vigil 01234567 front-door"
expect_eq "$DOOR device_class" "$(attr "$DOOR" device_class)" door
expect_eq "$FAULT device_class" "$(attr "$FAULT" device_class)" problem
expect_eq "$ALARM code_format" "$(attr "$ALARM" code_format)" number
expect_eq "$ALARM code_arm_required" "$(attr "$ALARM" code_arm_required)" false
# ARM_HOME 1 | ARM_AWAY 2 | ARM_NIGHT 4 | TRIGGER 8 | ARM_CUSTOM_BYPASS 16 | ARM_VACATION 32
expect_eq "$ALARM supported_features" "$(attr "$ALARM" supported_features)" 63
expect_eq "$ALARM attributes (json_attributes_topic)" "$(attr "$ALARM" mode)" disarmed
expect_eq "$LAST attributes (json_attributes_topic)" "$(attr "$LAST" seq)" 7
expect_eq "one device for all" \
  "$(template "{{ [device_id('$ALARM'), device_id('$DOOR'), device_id('$FAULT'), device_id('$CAMERA'), device_id('$SNAP'), device_id('$PANIC'), device_id('$LAST')] | unique | list | count }}")" 1
expect_eq "device" "$(template "{{ device_attr('$ALARM', 'manufacturer') }}/{{ device_attr('$ALARM', 'model') }}/{{ device_attr('$ALARM', 'sw_version') }}")" \
  "Vigil/Vigil alarm hub/0.1.0"
curl -sS -f -H "Authorization: Bearer $TOKEN" "$URL/api/camera_proxy/$CAMERA" -o porch.got \
  || fail "GET /api/camera_proxy/$CAMERA"
cmp -s porch.jpg porch.got || fail "$CAMERA image differs from the retained snapshot"
ok "$CAMERA serves the retained snapshot ($(wc -c < porch.got) bytes)"

# ---------------------------------------------------------------- states
pub -r -t "$V/sensor/front-door/state" -m ON
wait_state "$DOOR" on
pub -r -t "$V/sensor/front-door/fault" -m ON
wait_state "$FAULT" on
pub -r -t "$V/alarm/state" -m arming
wait_state "$ALARM" arming
pub -r -t "$V/alarm/state" -m armed_away
wait_state "$ALARM" armed_away
pub -r -t "$V/alarm/state" -m triggered
wait_state "$ALARM" triggered
pub -r -t "$V/alarm/state" -m disarmed
wait_state "$ALARM" disarmed
pub -r -t "$V/availability" -m offline
wait_state "$ALARM" unavailable
wait_state "$DOOR" unavailable
pub -r -t "$V/availability" -m online
wait_state "$ALARM" disarmed
wait_state "$DOOR" on

# ---------------------------------------------------------------- commands
# What HA publishes, verbatim ("topic payload").
cmd() { # cmd LABEL DOMAIN/SERVICE JSON WANT
  local got
  got=$(command_of "$2" "$3")
  [ "$got" = "$4" ] || fail "$1: HA published '$got', want '$4'"
  ok "$1 -> $got"
}
cmd "arm_away with code" alarm_control_panel/alarm_arm_away "{\"entity_id\":\"$ALARM\",\"code\":\"2468\"}" \
  "$V/alarm/set {\"action\": \"ARM_AWAY\", \"code\": \"2468\"}"
cmd "arm_home with code" alarm_control_panel/alarm_arm_home "{\"entity_id\":\"$ALARM\",\"code\":\"2468\"}" \
  "$V/alarm/set {\"action\": \"ARM_HOME\", \"code\": \"2468\"}"
cmd "arm_night with code" alarm_control_panel/alarm_arm_night "{\"entity_id\":\"$ALARM\",\"code\":\"2468\"}" \
  "$V/alarm/set {\"action\": \"ARM_NIGHT\", \"code\": \"2468\"}"
cmd "arm_vacation with code" alarm_control_panel/alarm_arm_vacation "{\"entity_id\":\"$ALARM\",\"code\":\"2468\"}" \
  "$V/alarm/set {\"action\": \"ARM_VACATION\", \"code\": \"2468\"}"
cmd "arm_custom_bypass with code" alarm_control_panel/alarm_arm_custom_bypass "{\"entity_id\":\"$ALARM\",\"code\":\"2468\"}" \
  "$V/alarm/set {\"action\": \"ARM_CUSTOM_BYPASS\", \"code\": \"2468\"}"
cmd "disarm with code" alarm_control_panel/alarm_disarm "{\"entity_id\":\"$ALARM\",\"code\":\"2468\"}" \
  "$V/alarm/set {\"action\": \"DISARM\", \"code\": \"2468\"}"
cmd "arm_away without code" alarm_control_panel/alarm_arm_away "{\"entity_id\":\"$ALARM\"}" \
  "$V/alarm/set {\"action\": \"ARM_AWAY\", \"code\": \"None\"}"
cmd "trigger without code" alarm_control_panel/alarm_trigger "{\"entity_id\":\"$ALARM\"}" \
  "$V/alarm/set {\"action\": \"TRIGGER\", \"code\": \"None\"}"
cmd "panic button" button/press "{\"entity_id\":\"$PANIC\"}" "$V/panic/set PRESS"
cmd "snapshot button" button/press "{\"entity_id\":\"$SNAP\"}" "$V/camera/porch/snapshot/set PRESS"
# code_disarm_required with REMOTE_CODE: no code, no command (HA logs a warning).
n=$(wc -l < commands.log)
call alarm_control_panel/alarm_disarm "{\"entity_id\":\"$ALARM\"}"
pub -t "$V/check/after" -m disarm-without-code # a marker: HA's publish would be before it
got=$(next_command "$n")
expect_eq "disarm without code publishes nothing" "$got" "$V/check/after disarm-without-code"
grep -q "Wrong code entered for disarming" "$HALOG" || fail "no 'Wrong code entered' in $HALOG"
ok "HA logged: $(grep -m1 -o 'Wrong code entered for disarming' "$HALOG")"

# ---------------------------------------------------------------- removal
pub -r -t "homeassistant/button/$NODE/panic/config" -n
wait_state "$PANIC" absent
pub -r -t "homeassistant/binary_sensor/$NODE/front-door_fault/config" -n
wait_state "$FAULT" absent
wait_state "$DOOR" on
expect_eq "registry entry of $PANIC after removal" \
  "$(template "{{ device_id('$PANIC') }}")" "None"

# ---------------------------------------------------------------- HA's log
# Every warning or error HA logged, but for the three expected ones: nothing
# about our discovery payloads, entity names, device classes or topics.
complaints=$(grep -aE '^[0-9-]+ [0-9:.]+ (WARNING|ERROR|CRITICAL) ' "$HALOG" \
  | grep -avE 'Skipping pip installation of required modules|Support for the running Python version|Wrong code entered for disarming' || true)
if [ -n "$complaints" ]; then
  echo "$complaints" >&2
  fail "Home Assistant logged warnings/errors (above; full log $HALOG)"
fi
ok "no unexpected warning or error in $HALOG"
say "discovery lines in HA's log:"
grep -a 'vigil' "$HALOG" | grep -aiE 'discover|Found new|Removing' | sed 's/^[0-9-]* //; s/^/  /' | cut -c1-200 >&2 || true

# The net works: a config HA rejects shows up in its log.
pub -r -t "homeassistant/binary_sensor/vigil_check/bad/config" -m \
  '{"name":"bad","unique_id":"vigil_check_bad","state_topic":"vigil/check/bad","device_class":"doorbell"}'
for _ in $(seq 1 50); do
  grep -aq "vigil_check_bad" "$HALOG" && break
  sleep 0.1
done
grep -a "vigil_check_bad" "$HALOG" | grep -aqE 'ERROR|Invalid|invalid' \
  || fail "HA did not log an error for an invalid config; the log check above proves nothing"
ok "an invalid config is caught: $(grep -a 'vigil_check_bad' "$HALOG" | head -n 1 | cut -c1-200)"
pub -r -t "homeassistant/binary_sensor/vigil_check/bad/config" -n
