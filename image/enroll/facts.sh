# Hardware facts as the enrollment JSON document; sourced by /init after json.sh.
# `enroll_facts BOOTMAC` prints the document (see the keys below: the enrollment API's
# contract). Paths are under $ENROLL_SYS (/sys), $ENROLL_PROC (/proc) and $ENROLL_RUN
# (/run/enroll, where udhcpc.script notes each NIC's address), so tests can feed it a tree.
#
# LLDP neighbours are not collected: busybox has no way to open a packet socket for
# LLDP frames (no tcpdump, no lldpd), so lldp_chassis and lldp_port are always null.

sys=${ENROLL_SYS:-/sys}
proc=${ENROLL_PROC:-/proc}
run=${ENROLL_RUN:-/run/enroll}

# attr FILE: the first line of FILE without surrounding blanks; empty if unreadable.
attr() {
    [ -r "$1" ] || return 0
    head -n 1 "$1" 2>/dev/null | sed -e 's/^[[:space:]]*//' -e 's/[[:space:]]*$//'
}

# vpd_serial FILE: the unit serial number in a SCSI VPD page 0x80 (after its 4-byte header).
vpd_serial() {
    [ -r "$1" ] || return 0
    dd if="$1" bs=1 skip=4 2>/dev/null | tr -d '\000' | sed -e 's/^[[:space:]]*//' -e 's/[[:space:]]*$//'
}

# nics: the names of the network interfaces that are devices (not lo or virtual links).
nics() {
    for d in "$sys"/class/net/*; do
        [ -e "$d/device" ] && echo "${d##*/}"
    done
}

# disks: block devices that are disks (not loop, ram, zram, floppy, optical, md or dm).
disks() {
    for d in "$sys"/block/*; do
        case "${d##*/}" in
            '*' | loop* | ram* | zram* | fd* | sr* | md* | dm-* | nbd*) ;;
            *) echo "${d##*/}" ;;
        esac
    done
}

# boot_nic BOOTMAC: the NIC with that MAC if there is one, else the first with an address.
boot_nic() {
    for n in $(nics); do
        [ -n "$1" ] && [ "$(attr "$sys/class/net/$n/address")" = "$1" ] && { echo "$n"; return; }
    done
    for n in $(nics); do
        [ -s "$run/ip.$n" ] && { echo "$n"; return; }
    done
}

disk_json() {
    d="$sys/block/$1"
    serial=$(attr "$d/serial")
    [ -n "$serial" ] || serial=$(attr "$d/device/serial")
    [ -n "$serial" ] || serial=$(vpd_serial "$d/device/vpd_pg80")
    sectors=$(attr "$d/size")
    printf '{"name": %s, "size_bytes": %s, "serial": %s, "model": %s, "rotational": %s}' \
        "$(json_str "$1")" "$(json_num "$((${sectors:-0} * 512))")" "$(json_str "$serial")" \
        "$(json_str "$(attr "$d/device/model")")" "$(json_bool "$(attr "$d/queue/rotational")")"
}

nic_json() {  # NAME BOOTNAME
    n="$sys/class/net/$1"
    driver=$(readlink "$n/device/driver" 2>/dev/null)
    boot=false
    [ "$1" = "$2" ] && boot=true
    printf '{"mac": %s, "name": %s, "driver": %s, "link": %s, "ip": %s, "boot": %s, ' \
        "$(json_str "$(attr "$n/address")")" "$(json_str "$1")" "$(json_str "${driver##*/}")" \
        "$(json_bool "$(attr "$n/carrier" 2>/dev/null)")" "$(json_str "$(attr "$run/ip.$1")")" "$boot"
    printf '"lldp_chassis": null, "lldp_port": null}'
}

# json_list FUNCTION "A B ..." [EXTRA]: "[FUNCTION A EXTRA, FUNCTION B EXTRA, ...]".
json_list() {
    fn=$1; shift
    sep=''
    printf '['
    for item in $1; do
        printf '%s' "$sep"; "$fn" "$item" "$2"; sep=', '
    done
    printf ']'
}

enroll_facts() {  # BOOTMAC (lowercase aa:bb:..., may be empty)
    dmi="$sys/class/dmi/id"
    cpus=$(grep -c '^processor' "$proc/cpuinfo")
    cpu_model=$(sed -n 's/^model name[[:space:]]*:[[:space:]]*//p' "$proc/cpuinfo" | head -n 1)
    mem_kb=$(sed -n 's/^MemTotal:[[:space:]]*\([0-9]*\).*/\1/p' "$proc/meminfo")
    printf '{"uuid": %s, "serial": %s, "vendor": %s, "product": %s, ' \
        "$(json_str "$(attr "$dmi/product_uuid")")" "$(json_str "$(attr "$dmi/product_serial")")" \
        "$(json_str "$(attr "$dmi/sys_vendor")")" "$(json_str "$(attr "$dmi/product_name")")"
    printf '"board_serial": %s, "chassis_serial": %s, ' \
        "$(json_str "$(attr "$dmi/board_serial")")" "$(json_str "$(attr "$dmi/chassis_serial")")"
    printf '"cpus": %s, "cpu_model": %s, "memory_mb": %s, ' \
        "$(json_num "$cpus")" "$(json_str "$cpu_model")" "$(json_num "$((${mem_kb:-0} / 1024))")"
    printf '"disks": %s, ' "$(json_list disk_json "$(disks)")"
    printf '"interfaces": %s}\n' "$(json_list nic_json "$(nics)" "$(boot_nic "$1")")"
}
