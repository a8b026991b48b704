// The appliance's domain objects, as stored in OSIS.
//
// Rules for changing this file (objects written by every earlier version must still
// read, and older readers must still read what newer writers store):
//   - never change or reuse a field id, never change a field's type;
//   - new fields are optional or have a default;
//   - removed fields leave their id retired (comment it out, keep the line).
// Times are seconds since the epoch (double). Every stored object has `1: string guid`.

namespace py pylabs.osis

enum MachineState {
  NEW = 0,        // seen by DHCP or enrollment, not yet enrolled
  ENROLLED = 1,   // facts collected, has a name, reservation and DNS records
  COMMISSIONING = 2,
  READY = 3,
  DEPLOYING = 4,
  DEPLOYED = 5,
  RESCUE = 6,
  BROKEN = 7,
  RETIRED = 8,
}

struct NetworkInterface {
  1: string mac,          // lower case, colon separated
  2: optional string name,
  3: optional string driver,
  4: optional string ip,
  5: bool boot = false,   // the NIC the machine PXE-booted from
  6: optional bool link,
  7: optional string lldp_chassis,
  8: optional string lldp_port,
  9: optional i64 speed_mbps,
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
  2: optional string uuid,         // SMBIOS UUID as in /sys/class/dmi/id/product_uuid
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
  13: optional string board_serial,
  14: optional string chassis_serial,
  15: optional string ip,           // its reserved address
  16: double created = 0,
  17: double updated = 0,
  18: map<string, string> tags = {},
  19: optional string arch,         // client architecture seen at PXE (e.g. "bios", "efi-x64")
}

enum LeaseState {
  OFFERED = 0,
  BOUND = 1,
  RELEASED = 2,
  DECLINED = 3,
  EXPIRED = 4,
}

struct Lease {
  1: string guid,                   // the address, dotted quad
  2: string ip,
  3: string mac,
  4: LeaseState state = LeaseState.OFFERED,
  5: double starts = 0,
  6: double ends = 0,
  7: optional string hostname,
  8: optional string client_id,     // option 61, hex
  9: optional string machine,       // guid of the Machine, when known
}

struct DnsRecord {
  1: string guid,
  2: string name,                   // fully qualified, no trailing dot
  3: string rtype,                  // A, AAAA, PTR, CNAME, TXT, SRV
  4: string value,
  5: i32 ttl = 300,
  6: optional string machine,
}

enum AgentStatus {
  OFFLINE = 0,
  ONLINE = 1,
}

struct Agent {
  1: string guid,
  2: string jid,
  3: optional string machine,
  4: AgentStatus status = AgentStatus.OFFLINE,
  5: double last_seen = 0,
  6: optional string version,
  7: optional string password,      // its XMPP password, given to the machine at enrollment
}

enum JobState {
  QUEUED = 0,       // waiting for its agent to be online (or for the time of a retry)
  RUNNING = 1,      // its agent said it runs
  SUCCEEDED = 2,    // (was DONE)
  FAILED = 3,
  TIMED_OUT = 4,
  CANCELLED = 5,
  DISPATCHED = 6,   // sent to its agent, no word yet
  SKIPPED = 7,      // a workflow step whose condition said no
}

struct Job {
  1: string guid,
  2: string agent,                  // guid of the Agent that runs it
  3: string action,                 // "tasklet", "script", "workflow" or "local" (a step the engine runs)
  4: string params_json = "{}",     // tasklet params; {"script": …}; a workflow's params
  5: JobState state = JobState.QUEUED,
  6: double created = 0,
  7: optional double started,
  8: optional double finished,
  9: optional i32 exit_status,
  10: optional string output,
  11: optional string result_json,
  12: i32 attempts = 0,
  13: optional string workflow,     // guid of the workflow job it is a step of (a workflow: its own)
  14: i32 timeout = 300,
  15: list<string> tags = [],         // a tasklet job's tags; a workflow job's: its name
  16: optional string log,            // the engine's notes and the agent's streamed output (the tail)
  17: optional string error,          // why it did not succeed, in a line
  18: optional double dispatched,     // when it was last sent to its agent
  19: bool cancel_requested = false,
  20: optional string owner,          // JID of the controller whose engine dispatched it
  21: optional string jid,            // its agent's bare JID
  22: optional double not_before,     // not to be sent before this time (a retry's delay)
  23: optional string step,           // a workflow step's name
}

struct MonitorSample {
  1: string guid,
  2: string agent,
  3: string metric,
  4: double value = 0,
  5: double timestamp = 0,
  6: map<string, string> labels = {},
}

struct Event {
  1: string guid,
  2: double timestamp = 0,
  3: string kind,                   // e.g. "machine.enrolled"
  4: optional string machine,
  5: string message = "",
  6: map<string, string> data = {},
}
