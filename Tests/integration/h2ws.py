"""A WebSocket client over one HTTP/2 stream (RFC 8441 extended CONNECT),
built on the `h2` package, as a browser opens one when the server
advertises SETTINGS_ENABLE_CONNECT_PROTOCOL. Frames are read as
rawws.RawWebSocket reads them."""

import socket
import ssl

import h2.config
import h2.connection
import h2.events
import h2.settings

from rawws import ServerFrameReader


class H2WebSocket(ServerFrameReader):
    def __init__(self, port, path="/echo", headers=(), timeout=5):
        """Connects, waits for the server's SETTINGS, opens the stream.
        `status` is the server's answer (200 when the WebSocket is open);
        `response_headers` its headers; `reset_code` the error code if the
        server reset the stream instead."""
        context = ssl.create_default_context()
        context.check_hostname = False
        context.verify_mode = ssl.CERT_NONE
        context.set_alpn_protocols(["h2"])
        raw = socket.create_connection(("127.0.0.1", port), timeout=timeout)
        self.sock = context.wrap_socket(raw, server_hostname="localhost")
        assert self.sock.selected_alpn_protocol() == "h2", "server did not negotiate h2"
        self.conn = h2.connection.H2Connection(h2.config.H2Configuration(client_side=True))
        self._keep_streams_after_goaway()
        self.conn.initiate_connection()
        self._flush()
        self.buffer = b""
        self.stream_ended = False
        self.reset_code = None
        self.connect_protocol_enabled = None
        while self.connect_protocol_enabled is None:
            self._receive()
        self.status = None
        self.response_headers = {}
        if not self.connect_protocol_enabled:
            return
        self.stream_id = self.conn.get_next_available_stream_id()
        self.conn.send_headers(self.stream_id, [
            (":method", "CONNECT"), (":protocol", "websocket"), (":scheme", "https"),
            (":path", path), (":authority", f"127.0.0.1:{port}"),
            ("sec-websocket-version", "13"), *headers,
        ])
        self._flush()
        while self.status is None and not self.stream_ended:
            self._receive()

    def _keep_streams_after_goaway(self):
        """h2 closes the whole connection when a GOAWAY arrives, but streams
        the GOAWAY covers may go on (RFC 9113 6.8): mod_http2 sends one at a
        graceful restart, before our WebSockets' 1001 close frames. This
        patches h2's private transition table: requirements.txt pins h2."""
        machine = self.conn.state_machine
        client_open = h2.connection.ConnectionState.CLIENT_OPEN
        goaway = h2.connection.ConnectionInputs.RECV_GOAWAY
        machine._transitions = {**machine._transitions, (client_open, goaway): (None, client_open)}

    def _flush(self):
        data = self.conn.data_to_send()
        if data:
            self.sock.sendall(data)

    def _receive(self):
        """Reads one chunk from the socket and handles its HTTP/2 events."""
        chunk = self.sock.recv(65536)
        if not chunk:
            raise EOFError("connection closed")
        for event in self.conn.receive_data(chunk):
            if isinstance(event, h2.events.RemoteSettingsChanged):
                setting = event.changed_settings.get(h2.settings.SettingCodes.ENABLE_CONNECT_PROTOCOL)
                self.connect_protocol_enabled = bool(setting and setting.new_value)
            elif isinstance(event, h2.events.ResponseReceived):
                headers = {name.decode(): value.decode() for name, value in event.headers}
                self.status = int(headers.pop(":status"))
                self.response_headers = headers
            elif isinstance(event, h2.events.DataReceived):
                self.buffer += event.data
                self.conn.acknowledge_received_data(event.flow_controlled_length, event.stream_id)
            elif isinstance(event, h2.events.StreamEnded):
                self.stream_ended = True
            elif isinstance(event, h2.events.StreamReset):
                self.stream_ended = True
                self.reset_code = event.error_code
        self._flush()

    def send(self, data):
        """Sends WebSocket bytes (frames from rawws.frame) as DATA."""
        while data:
            window = self.conn.local_flow_control_window(self.stream_id)
            size = min(window, self.conn.max_outbound_frame_size, len(data))
            if size == 0:
                self._receive()
                continue
            self.conn.send_data(self.stream_id, data[:size])
            data = data[size:]
            self._flush()

    def _read(self, n):
        while len(self.buffer) < n:
            if self.stream_ended:
                raise EOFError("stream ended")
            self._receive()
        data, self.buffer = self.buffer[:n], self.buffer[n:]
        return data

    def close(self):
        self.sock.close()
