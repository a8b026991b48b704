// An older version of appliance/osis/domain.thrift, for the schema evolution tests:
// Machine without fields 13-19, NetworkInterface without 6-9.

enum MachineState {
  NEW = 0,
  ENROLLED = 1,
}

struct NetworkInterface {
  1: string mac,
  2: optional string name,
  3: optional string driver,
  4: optional string ip,
  5: bool boot = false,
}

struct Disk {
  1: string name,
  2: i64 size_bytes = 0,
  3: optional string serial,
  4: optional string model,
  5: optional bool rotational,
}

struct Machine {
  1: string guid,
  2: optional string uuid,
  3: optional string serial,
  4: optional string vendor,
  5: optional string product,
  6: optional string hostname,
  7: MachineState state = MachineState.NEW,
  8: i32 cpus = 0,
  9: optional string cpu_model,
  10: i64 memory_mb = 0,
  11: list<NetworkInterface> interfaces = [],
  12: list<Disk> disks = [],
}
