"""Guards put in front of impacket's SMB2 command handlers.

Each wrapper checks a request against the share's jail and the access policy, answers a
refusal itself, and hands everything else to impacket's own handler. They fix what
impacket gets wrong (LIBRARY-NOTES): string-prefix path jail, IPC$ serving the current
directory, guest sessions when credentials are required, sessions marked authenticated
after a failed logon, search patterns that walk out of the listed directory, writes on
read-only shares, a fixed server GUID and 64 KiB reads.
"""

import os
import uuid as _uuid

from impacket import smb3structs as smb2
from impacket import uuid
from impacket.nt_errors import (
    STATUS_ACCESS_DENIED,
    STATUS_BAD_NETWORK_NAME,
    STATUS_LOGON_FAILURE,
    STATUS_MORE_PROCESSING_REQUIRED,
    STATUS_OBJECT_NAME_INVALID,
    STATUS_OBJECT_NAME_NOT_FOUND,
    STATUS_SUCCESS,
)
from impacket.smbserver import PIPE_FILE_DESCRIPTOR

from netservices.smb import jail, wire
from netservices.smb.policy import Policy, Session, create_allowed

SESSION = "pylabs_session"  # keys of ours in impacket's per-connection dict
NEGOTIATED = "pylabs_negotiated"
IPC = "IPC$"
PIPES = ("srvsvc",)


def refuse(status: int):
    """What an impacket command handler returns for an error reply."""
    return [smb2.SMB2Error()], None, status


class Guards:
    """The wrappers for one server; `install` hooks them into its command table."""

    def __init__(self, server, policy: Policy, open_pipe):
        self.server = server
        self.policy = policy
        self.open_pipe = open_pipe  # (name) -> socket of a pipe served in-process
        self.server_guid = _uuid.uuid4().bytes
        self.original = {}

    def install(self) -> None:
        table = {
            smb2.SMB2_NEGOTIATE: self.negotiate,
            smb2.SMB2_SESSION_SETUP: self.session_setup,
            smb2.SMB2_TREE_CONNECT: self.tree_connect,
            smb2.SMB2_CREATE: self.create,
            smb2.SMB2_QUERY_DIRECTORY: self.query_directory,
            smb2.SMB2_SET_INFO: self.set_info,
            smb2.SMB2_WRITE: self.write,
        }
        for command, guard in table.items():
            self.original[command] = self.server.hookSmb2Command(command, guard)
        self.server.getIoctls()[smb2.FSCTL_VALIDATE_NEGOTIATE_INFO] = self.validate_negotiate

    def negotiate(self, conn_id, server, packet, isSMB1=False):  # noqa: N803 - impacket's name
        _, packets, status = self.original[smb2.SMB2_NEGOTIATE](conn_id, server, packet, isSMB1)
        response = packets[0]['Data']
        if isSMB1:
            offered = [wire.DIALECT_21] if b"SMB 2.???" in packet['Data'][0] else []
        else:
            offered = list(smb2.SMB2Negotiate(packet['Data'])['Dialects'])
        dialect = wire.choose_dialect(offered, isSMB1)
        response['DialectRevision'] = dialect
        response['ServerGuid'] = self.server_guid
        if dialect == wire.DIALECT_21:
            response['Capabilities'] = wire.CAP_LARGE_MTU
            for key in ('MaxTransactSize', 'MaxReadSize', 'MaxWriteSize'):
                response[key] = wire.MAX_IO
        conn = server.getConnectionData(conn_id, checkStatus=False)
        conn[NEGOTIATED] = (dialect, response['Capabilities'])
        return None, packets, status

    def validate_negotiate(self, conn_id, server, request):
        """FSCTL_VALIDATE_NEGOTIATE_INFO (MS-SMB2 3.3.5.15.12) with what was negotiated;
        impacket's fixed answer makes Samba's client drop signed sessions."""
        dialect, capabilities = server.getConnectionData(conn_id)[NEGOTIATED]
        response = smb2.VALIDATE_NEGOTIATE_INFO_RESPONSE()
        response['Capabilities'] = capabilities
        response['Guid'] = self.server_guid
        response['SecurityMode'] = 1
        response['Dialect'] = dialect
        return response.getData(), STATUS_SUCCESS

    def session_setup(self, conn_id, server, packet):
        commands, packets, status = self.original[smb2.SMB2_SESSION_SETUP](conn_id, server, packet)
        conn = server.getConnectionData(conn_id, checkStatus=False)
        if status == STATUS_SUCCESS:
            guest = bool(commands[0].fields.get('SessionFlags', 0) & 0x3)  # IS_GUEST | IS_NULL
            if guest and not self.policy.guest_allowed:
                status = STATUS_LOGON_FAILURE
            else:
                conn[SESSION] = Session(None if guest else conn['user_name'].lower())
        # impacket marks the connection authenticated after any session setup, even a
        # failed one; only a completed logon may go on to other commands.
        conn['Authenticated'] = status == STATUS_SUCCESS
        if status not in (STATUS_SUCCESS, STATUS_MORE_PROCESSING_REQUIRED):
            conn.pop(SESSION, None)
            return refuse(status)
        return commands, packets, status

    def tree_connect(self, conn_id, server, packet):
        conn = server.getConnectionData(conn_id)
        request = smb2.SMB2TreeConnect(packet['Data'])
        raw = packet.getData()[request['PathOffset']:][:request['PathLength']]
        name = raw.decode('utf-16le', 'replace').rsplit('\\', 1)[-1]
        session = conn.get(SESSION)
        if session is None:
            return refuse(STATUS_ACCESS_DENIED)
        if name.upper() != IPC:
            share = self.policy.share(name)
            if share is None:
                return refuse(STATUS_BAD_NETWORK_NAME)
            if not self.policy.may_connect(share, session):
                return refuse(STATUS_ACCESS_DENIED)
        return self.original[smb2.SMB2_TREE_CONNECT](conn_id, server, packet)

    def _tree(self, conn, packet) -> dict | None:
        return conn['ConnectedShares'].get(packet['TreeID'])

    def create(self, conn_id, server, packet):
        conn = server.getConnectionData(conn_id)
        tree = self._tree(conn, packet)
        if tree is None:
            return self.original[smb2.SMB2_CREATE](conn_id, server, packet)
        request = smb2.SMB2Create(packet['Data'])
        try:
            name = request['Buffer'][:request['NameLength']].decode('utf-16le')
        except UnicodeDecodeError:
            return refuse(STATUS_OBJECT_NAME_INVALID)
        if tree['shareName'].upper() == IPC:
            return self._create_pipe(conn, name.strip('\\').lower())
        share = self.policy.share(tree['shareName'])
        real = jail.resolve(share.path, name)
        if real is None:
            return refuse(STATUS_ACCESS_DENIED)
        if not create_allowed(share.read_only, request['DesiredAccess'], request['CreateDisposition'],
                              request['CreateOptions'], os.path.lexists(real)):
            return refuse(STATUS_ACCESS_DENIED)
        return self.original[smb2.SMB2_CREATE](conn_id, server, packet)

    def _create_pipe(self, conn, name: str):
        """IPC$ holds named pipes only, each served in-process; impacket's IPC$ is the
        process's current directory, every file of it readable."""
        if name not in PIPES:
            return refuse(STATUS_OBJECT_NAME_NOT_FOUND)
        fid = uuid.generate()
        response = smb2.SMB2Create_Response()
        response['Buffer'] = b'\x00'
        response['FileID'] = fid
        response['CreateAction'] = 1  # FILE_OPENED
        response['AllocationSize'] = 4096
        response['FileAttributes'] = 0x80  # FILE_ATTRIBUTE_NORMAL
        conn['OpenedFiles'][fid] = {
            'FileHandle': PIPE_FILE_DESCRIPTOR, 'FileName': name, 'DeleteOnClose': False,
            'Open': {'EnumerationLocation': 0, 'EnumerationSearchPattern': ''},
            'Socket': self.open_pipe(name),
        }
        conn['LastRequest']['SMB2_CREATE'] = response
        return [response], None, STATUS_SUCCESS

    def query_directory(self, conn_id, server, packet):
        request = smb2.SMB2QueryDirectory(packet['Data'])
        raw = request['Buffer'][:request['FileNameLength']]
        try:
            pattern = raw.decode('utf-16le')
        except UnicodeDecodeError:
            return refuse(STATUS_OBJECT_NAME_INVALID)
        if pattern and not jail.is_pattern(pattern):
            return refuse(STATUS_OBJECT_NAME_INVALID)
        return self.original[smb2.SMB2_QUERY_DIRECTORY](conn_id, server, packet)

    def set_info(self, conn_id, server, packet):
        conn = server.getConnectionData(conn_id)
        tree = self._tree(conn, packet)
        if tree is not None and tree['shareName'].upper() != IPC:
            share = self.policy.share(tree['shareName'])
            if share.read_only:
                return refuse(STATUS_ACCESS_DENIED)
            request = smb2.SMB2SetInfo(packet['Data'])
            if request['InfoType'] == smb2.SMB2_0_INFO_FILE \
                    and request['FileInfoClass'] == smb2.SMB2_FILE_RENAME_INFO:
                rename = smb2.FILE_RENAME_INFORMATION_TYPE_2(request['Buffer'])
                target = rename['FileName'].decode('utf-16le', 'replace')
                if jail.resolve(share.path, target) is None:
                    return refuse(STATUS_ACCESS_DENIED)
        return self.original[smb2.SMB2_SET_INFO](conn_id, server, packet)

    def write(self, conn_id, server, packet):
        conn = server.getConnectionData(conn_id)
        tree = self._tree(conn, packet)
        if tree is not None and tree['shareName'].upper() != IPC:
            if self.policy.share(tree['shareName']).read_only:
                return refuse(STATUS_ACCESS_DENIED)
        return self.original[smb2.SMB2_WRITE](conn_id, server, packet)
