#!/usr/bin/env bash
# Captures the files `odai probe` reads on this device into OUT_DIR, laid out as on the device,
# so `odai probe --root OUT_DIR` reports this device anywhere (bug reports, new test fixtures).
#
#   scripts/capture-tree.sh OUT_DIR
#
# Only small attribute files are copied (no logs, no keys, no user data); the hostname is kept —
# edit OUT_DIR/proc/sys/kernel/hostname before sharing if it matters. Run it as the user odai
# runs as: files that user cannot read are left out, as odai would not see them either.
set -euo pipefail
out=${1:?usage: capture-tree.sh OUT_DIR}
mkdir -p "$out"
out=$(cd "$out" && pwd)

# grab PATH...: copy each readable regular file's contents (sysfs sizes lie, so cat, not cp).
grab() {
  local p
  for p in "$@"; do
    [ -f "$p" ] && [ -r "$p" ] || continue
    mkdir -p "$out$(dirname "$p")"
    cat "$p" >"$out$p" 2>/dev/null || rm -f "$out$p"
  done
}
# link_name PATH: recreate a symlink whose last component odai reads (a device's driver).
link_name() {
  local p=$1 target
  [ -L "$p" ] || return 0
  target=$(basename "$(readlink "$p")")
  mkdir -p "$out$(dirname "$p")"
  ln -sfn "../drivers/$target" "$out$p"
}
touch_node() { mkdir -p "$out$(dirname "$1")"; : >"$out$1"; }

shopt -s nullglob
grab /proc/sys/kernel/hostname /proc/sys/kernel/osrelease /proc/sys/kernel/arch
grab /etc/os-release /usr/lib/os-release /system/build.prop /vendor/build.prop /odm/etc/build.prop
grab /proc/cpuinfo /proc/meminfo /proc/pressure/memory /proc/self/cgroup
grab /proc/device-tree/model /proc/device-tree/compatible
# The CPU affinity lines only (the rest of /proc/self/status describes this shell, not the device).
mkdir -p "$out/proc/self"
grep -E '^(Cpus_allowed|Cpus_allowed_list|Mems_allowed_list):' /proc/self/status >"$out/proc/self/status" || true
grab /sys/class/dmi/id/sys_vendor /sys/class/dmi/id/product_name

cpu=/sys/devices/system/cpu
grab $cpu/online $cpu/cpu[0-9]*/topology/core_cpus_list $cpu/cpu[0-9]*/topology/thread_siblings_list
grab $cpu/cpu[0-9]*/thermal_throttle/core_throttle_count $cpu/cpu[0-9]*/thermal_throttle/package_throttle_count
for pol in $cpu/cpufreq/policy*; do
  grab "$pol"/{related_cpus,scaling_governor,scaling_cur_freq,scaling_max_freq,cpuinfo_max_freq}
done

# The cgroups of this process and their ancestors (v2 unified, v1 memory and cpu hierarchies).
grab /sys/fs/cgroup/cgroup.controllers
while IFS=: read -r id ctrls path; do
  case "$id:$ctrls" in
    0:) base=/sys/fs/cgroup ;;
    *memory*) base=/sys/fs/cgroup/memory ;;
    *cpu,*|*cpu) base=/sys/fs/cgroup/cpu ;;
    *cpuset*) base=/sys/fs/cgroup/cpuset ;;
    *) continue ;;
  esac
  dir=$base${path%/}
  while :; do
    grab "$dir"/{memory.max,memory.current,cpu.max,memory.limit_in_bytes,memory.usage_in_bytes,cpu.cfs_quota_us,cpu.cfs_period_us,cpuset.cpus.effective,cpuset.effective_cpus,cpuset.cpus}
    [ "$dir" = "$base" ] && break
    dir=$(dirname "$dir")
  done
done </proc/self/cgroup

for z in /sys/class/thermal/thermal_zone*; do
  grab "$z"/type "$z"/temp "$z"/trip_point_*_type "$z"/trip_point_*_temp
done
for c in /sys/class/thermal/cooling_device*; do
  grab "$c"/{type,cur_state,max_state}
done
while IFS= read -r f; do grab "$f"; done < <(find /sys/devices/platform -maxdepth 3 -name get_throttled 2>/dev/null)

for s in /sys/class/power_supply/*; do
  grab "$s"/{type,scope,status,capacity,energy_now,energy_full,charge_now,charge_full,charge_counter,power_now,current_now,voltage_now,online}
done
for z in /sys/class/powercap/*; do grab "$z"/{name,energy_uj,max_energy_range_uj}; done
for h in /sys/class/hwmon/hwmon*; do
  grab "$h"/name "$h"/energy*_input "$h"/energy*_label "$h"/power*_input "$h"/power*_average \
    "$h"/power*_label "$h"/in*_label "$h"/in*_input "$h"/curr*_input
done

for a in /sys/class/accel/accel* /sys/class/drm/card[0-9]*; do
  case "$a" in *-*) continue ;; esac
  grab "$a"/device/vendor "$a"/device/device
  link_name "$a"/device/driver
done
for n in /dev/accel/accel* /dev/fastrpc-* /dev/apex_* /dev/hailo*; do touch_node "$n"; done
for d in /sys/class/devfreq/*; do mkdir -p "$out$d"; done

echo "captured $(find "$out" -type f | wc -l) files into $out; check it with: odai probe --root $out" >&2
