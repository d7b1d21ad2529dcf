// linecut's Eclipse Paho Go subscriber: a paho.mqtt.golang client reporting what it sees.
//
// Built against Debian bookworm's golang-github-eclipse-paho.mqtt.golang-dev 1.1.1 with its
// golang-go (1.19), in GOPATH mode, no network:
//
//	GO111MODULE=off GOPATH=/usr/share/gocode go build -o paho_go_subscriber paho_go_subscriber.go
//
// Everything the client notices is printed on stdout as one linecut event per line (JSON),
// stamped with the wall clock in Unix microseconds; notes for people go to stderr. The library
// has no version constant: the version printed is libVersion below (settable with
// -ldflags "-X main.libVersion=..."). File references are to the library's 1.1.1 sources
// (/usr/share/gocode/src/github.com/eclipse/paho.mqtt.golang/).
//
// The library's rules this program relies on (and does not change):
//
//   - MQTT 3.1.1 only (client.go: "an MQTT v3.1.1 client"); given --mqtt 5, or an MQTT 5 option
//     (--session-expiry, --receive-maximum, --will-delay), the program says so on stderr and exits
//     2. The protocol version is set explicitly (4), so a refused CONNECT is not retried as 3.1.
//   - Keepalive (ping.go:25-67): a ticker every 5 s when K > 10, else every K/2 s (integer
//     seconds: K = 1 makes a zero ticker and panics, so the program refuses K = 1 and exits 2).
//     At a tick, PINGREQ goes out when nothing was sent or nothing received for K (1 s
//     resolution) and no ping is outstanding; at the first tick where the ping has been
//     unanswered for PingTimeout (default 10 s, kept) it gives up: "pingresp not received,
//     disconnecting", then OnConnectionLost.
//   - Reconnecting: AutoReconnect (default true, kept) only after a loss (client.go:271-360,
//     internalConnLost): the first try at once, then 1, 2, 4 ... s up to MaxReconnectInterval
//     (10 min, kept). ConnectTimeout (30 s, kept) bounds the TCP dial only: a CONNACK that never
//     comes blocks the (re)connect for ever (client.go connect(): ReadPacket without deadline).
//     1.1.1 has no ConnectRetry: a failed first Connect() is final. This program retries the
//     first connection itself with the library's own reconnect rhythm (at once, then 1, 2, 4 ...
//     s up to MaxReconnectInterval), on a fresh client each time.
//   - Subscriptions: the library never resends SUBSCRIBE, and with a clean session the broker
//     forgets them, so the program subscribes (one SUBSCRIBE, every filter) in OnConnect, which
//     the library calls after every successful CONNACK, reconnects included: reason "always".
//
// What the program observes and how: 1.1.1 has no connection-attempt or reconnecting handler
// (no SetConnectionAttemptHandler, SetReconnectingHandler or ConnectRetry), but it logs through
// the package-level DEBUG/WARN/ERROR/CRITICAL loggers (trace.go), which the program replaces with
// its own. Nothing of the log is printed; these lines are read:
//
//   - "about to write new connect msg" (before every dial, Connect and reconnect): connect_attempt;
//     the dial's error text (ERROR, e.g. "... connect: connection refused"): a failed attempt;
//     "connect got error" (ERROR, reading CONNACK): an attempt that ended before its CONNACK.
//   - "received connack", then "client is connected"/"client is reconnected" (connack 0) or
//     "CONNACK was not ..., but rather <text>" (a refusal, its code looked up in
//     packets.ConnackReturnCodes). Session present is never passed on by 1.1.1: with a clean
//     session it is false by the protocol; with --clean-session 0 the program reports false
//     and adds "session_present_unknown":true.
//   - "keepalive sending ping" (ping_sent, just before the write) and "received pingresp"
//     (ping_received).
//   - "received suback, id:" gives the SUBACK's packet id; the granted codes come from the
//     subscribe token's Result(), in the order of the --topic arguments.
//   - Why a connection ended: "pingresp not received, disconnecting" (CRITICAL) is
//     keepalive_timeout; "incoming/outgoing stopped with error" carries the read or write error
//     (io.EOF: closed_by_peer; ECONNRESET/EPIPE: connection_reset; ETIMEDOUT: kernel_timeout).
//     OnConnectionLost gets the same error and is used only when no log line told the end.
//   - "keepalive stopped" while the connection is up: the keepalive goroutine of a reconnected
//     session can read the previous, closed stop channel and quit at once (reconnect() starts it
//     before replacing c.stop); that connection then sends no PINGREQ. A note on stderr says so.
//   - Messages: the default publish handler (topic, QoS, dup, retained, message id, payload).
//   - Stopping: SIGTERM/SIGINT with a connection calls Disconnect(250) (DISCONNECT, then close)
//     and exits 0 within 1.5 s at most; without one it exits 0 at once.
package main

import (
	"bytes"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"os/signal"
	"runtime"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"

	mqtt "github.com/eclipse/paho.mqtt.golang"
	"github.com/eclipse/paho.mqtt.golang/packets"
)

// The library release this program was written against (it has no version constant).
var libVersion = "1.1.1"

type topic struct {
	filter string
	qos    byte
}

type topicList []topic

func (t *topicList) String() string { return fmt.Sprint(*t) }

func (t *topicList) Set(v string) error {
	i := strings.LastIndex(v, ":")
	if i < 0 {
		return fmt.Errorf("want FILTER:QOS, got %q", v)
	}
	q, err := strconv.Atoi(v[i+1:])
	if err != nil || q < 0 || q > 2 {
		return fmt.Errorf("bad QoS in %q", v)
	}
	*t = append(*t, topic{v[:i], byte(q)})
	return nil
}

type field struct {
	k string
	v interface{}
}

// What the program knows about the current attempt (connection), guarded by mu. Every line is
// printed with mu held, so lines never interleave.
type watch struct {
	mu          sync.Mutex
	clientID    string
	broker      string
	clean       bool
	quiet       bool // stopping: print nothing more
	attempt     int
	open        bool // the current attempt has not been reported ended
	tcpUp       bool
	connackSeen bool
	connected   bool
	lastEnd     time.Time // zero: nothing ended yet
	subackID    int
}

var w = &watch{subackID: -1}

func note(format string, a ...interface{}) {
	fmt.Fprintf(os.Stderr, "paho_go_subscriber: "+format+"\n", a...)
}

// emit prints one event; the caller holds w.mu.
func (w *watch) emit(kind string, fields ...field) {
	if w.quiet {
		return
	}
	var b bytes.Buffer
	b.WriteString(`{"ts_us":`)
	b.WriteString(strconv.FormatInt(time.Now().UnixMicro(), 10))
	b.WriteString(`,"source":"subscriber","type":`)
	writeJSON(&b, kind)
	b.WriteString(`,"client":`)
	writeJSON(&b, w.clientID)
	for _, f := range fields {
		b.WriteByte(',')
		writeJSON(&b, f.k)
		b.WriteByte(':')
		writeJSON(&b, f.v)
	}
	b.WriteString("}\n")
	os.Stdout.Write(b.Bytes())
}

func writeJSON(b *bytes.Buffer, v interface{}) {
	// Strings that are not UTF-8 come out with U+FFFD, so the line stays valid JSON.
	out, err := json.Marshal(v)
	if err != nil {
		out, _ = json.Marshal(fmt.Sprint(v))
	}
	b.Write(out)
}

func (w *watch) attemptBegin() {
	if w.open {
		w.attemptEnd("other", "a new connect started before the last one was reported ended")
	}
	w.attempt++
	w.open, w.tcpUp, w.connackSeen, w.connected = true, false, false, false
	w.subackID = -1
	delay := int64(0)
	if !w.lastEnd.IsZero() {
		delay = time.Since(w.lastEnd).Milliseconds()
	}
	w.emit("connect_attempt", field{"attempt", w.attempt}, field{"broker", w.broker},
		field{"delay_ms", delay})
}

func (w *watch) attemptEnd(cause, text string) {
	if !w.open {
		return
	}
	w.open, w.connected = false, false
	w.lastEnd = time.Now()
	w.emit("disconnected", field{"cause", cause}, field{"error", text})
}

// classify names the cause of a read, write or CONNACK error.
func classify(err error) string {
	switch {
	case errors.Is(err, io.EOF), errors.Is(err, io.ErrUnexpectedEOF):
		return "closed_by_peer"
	case errors.Is(err, syscall.ECONNRESET), errors.Is(err, syscall.EPIPE),
		errors.Is(err, syscall.ECONNABORTED):
		return "connection_reset"
	case errors.Is(err, syscall.ETIMEDOUT):
		return "kernel_timeout"
	case errors.Is(err, syscall.ECONNREFUSED):
		return "refused"
	}
	return "other"
}

// classifyDial names the cause of a failed dial from its text (the library logs only the text).
func classifyDial(text string) string {
	switch {
	case strings.Contains(text, "connection refused"):
		return "refused"
	case strings.Contains(text, "i/o timeout"), strings.Contains(text, "connection timed out"):
		return "connect_timeout"
	}
	return "other"
}

// pahoLog receives the library's log lines (one per level).
type pahoLog struct{ level string }

func (l pahoLog) Println(v ...interface{}) { w.onLog(l.level, v) }

func (l pahoLog) Printf(format string, v ...interface{}) {
	w.onLog(l.level, []interface{}{"", fmt.Sprintf(format, v...)})
}

func (w *watch) onLog(level string, v []interface{}) {
	if len(v) < 2 {
		return
	}
	msg, ok := v[1].(string)
	if !ok {
		return
	}
	w.mu.Lock()
	defer w.mu.Unlock()
	switch level {
	case "DEBUG":
		switch msg {
		case "about to write new connect msg":
			w.attemptBegin()
		case "socket connected to broker":
			w.tcpUp = true
		case "received connack":
			w.connackSeen = true
		case "client is connected", "client is reconnected":
			w.connected = true
			fields := []field{{"code", 0}, {"session_present", false}}
			if !w.clean {
				fields = append(fields, field{"session_present_unknown", true})
			}
			w.emit("connack", fields...)
		case "keepalive sending ping":
			w.emit("ping_sent")
		case "received pingresp":
			w.emit("ping_received")
		case "received suback, id:":
			if len(v) >= 3 {
				if id, ok := v[2].(uint16); ok {
					w.subackID = int(id)
				}
			}
		case "keepalive stopped":
			if w.open && w.connected && !w.quiet {
				note("the keepalive goroutine ended while connection %d is up: it will send no "+
					"PINGREQ (1.1.1 reconnect() starts it before replacing the closed stop channel)",
					w.attempt)
			}
		}
	case "ERROR":
		switch {
		case len(v) == 2 && v[0] == interface{}(mqtt.CLI) && w.open && !w.tcpUp &&
			!strings.HasPrefix(msg, "Failed to connect"):
			// The dial's error, logged as its text.
			w.attemptEnd(classifyDial(msg), "dial: "+msg)
		case msg == "Connecting to" && len(v) >= 5:
			if w.open && w.connackSeen {
				text := fmt.Sprint(v[4])
				code := 255
				for c, t := range packets.ConnackReturnCodes {
					if t == text {
						code = int(c)
					}
				}
				w.emit("connack", field{"code", code}, field{"session_present", false})
				w.attemptEnd("refused", "CONNACK: "+text)
			}
		case msg == "connect got error" && len(v) >= 3:
			if err, ok := v[2].(error); ok {
				w.attemptEnd(classify(err), "reading CONNACK: "+err.Error())
			}
		case msg == "received nil packet", msg == "received msg that was not CONNACK":
			w.attemptEnd("other", "reading CONNACK: "+msg)
		case msg == "incoming stopped with error", msg == "outgoing stopped with error":
			if len(v) >= 3 && w.connected {
				if err, ok := v[2].(error); ok {
					w.attemptEnd(classify(err), msg+": "+err.Error())
				}
			}
		}
	case "CRITICAL":
		if msg == "pingresp not received, disconnecting" {
			w.attemptEnd("keepalive_timeout", msg)
		}
	}
}

func decodePayload(p []byte) (uint64, int64, bool) {
	parts := bytes.SplitN(p, []byte("/"), 4)
	if len(parts) < 4 || string(parts[0]) != "lc1" {
		return 0, 0, false
	}
	seq, err1 := strconv.ParseUint(string(parts[1]), 10, 64)
	ts, err2 := strconv.ParseInt(string(parts[2]), 10, 64)
	if err1 != nil || err2 != nil {
		return 0, 0, false
	}
	return seq, ts, true
}

// emitInfo prints the first line: the library's version and the Go it was built with.
func (w *watch) emitInfo() {
	w.mu.Lock()
	w.emit("client_info", field{"library", "paho.mqtt.golang"}, field{"version", libVersion},
		field{"detail", "go " + strings.TrimPrefix(runtime.Version(), "go") + ", MQTT 3.1.1"})
	w.mu.Unlock()
}

func main() {
	var topics topicList
	host := flag.String("host", "", "broker host")
	port := flag.Int("port", 0, "broker port")
	clientID := flag.String("client-id", "", "client identifier")
	keepalive := flag.Int("keepalive", 60, "keepalive, seconds")
	cleanSession := flag.Int("clean-session", 1, "0 or 1")
	version := flag.String("mqtt", "3.1.1", "3.1.1 (5 is refused)")
	flag.Var(&topics, "topic", "FILTER:QOS, repeatable")
	sessionExpiry := flag.String("session-expiry", "", "MQTT 5 only (refused)")
	receiveMaximum := flag.String("receive-maximum", "", "MQTT 5 only (refused)")
	willTopic := flag.String("will-topic", "", "leave a Last Will on this topic")
	willPayload := flag.String("will-payload", "", "")
	willQos := flag.Int("will-qos", 0, "0, 1 or 2")
	willRetain := flag.Int("will-retain", 0, "0 or 1")
	willDelay := flag.String("will-delay", "", "MQTT 5 only (refused)")
	printVersion := flag.Bool("version", false, "print the client_info line and exit")
	flag.Parse()

	if *printVersion {
		// The library's version (linecut's check that the program was built and runs).
		w := &watch{}
		w.emitInfo()
		return
	}

	if flag.NArg() > 0 || *host == "" || *port <= 0 || *clientID == "" || len(topics) == 0 {
		note("--host, --port, --client-id and --topic are required")
		os.Exit(2)
	}
	if *version != "3.1.1" {
		note("paho.mqtt.golang %s speaks MQTT 3.1.1 only: cannot honour --mqtt %s", libVersion, *version)
		os.Exit(2)
	}
	if *sessionExpiry != "" || *receiveMaximum != "" || *willDelay != "" {
		note("paho.mqtt.golang %s speaks MQTT 3.1.1 only: cannot honour --session-expiry, "+
			"--receive-maximum or --will-delay", libVersion)
		os.Exit(2)
	}
	if *keepalive == 1 || *keepalive < 0 {
		note("paho.mqtt.golang %s cannot run keepalive %d (ping.go: a ticker of K/2 = 0 s panics)",
			libVersion, *keepalive)
		os.Exit(2)
	}
	if *cleanSession != 0 && *cleanSession != 1 || *willQos < 0 || *willQos > 2 ||
		*willRetain != 0 && *willRetain != 1 {
		note("bad --clean-session, --will-qos or --will-retain")
		os.Exit(2)
	}

	w.clientID = *clientID
	w.clean = *cleanSession == 1
	if strings.Contains(*host, ":") {
		w.broker = fmt.Sprintf("[%s]:%d", *host, *port)
	} else {
		w.broker = fmt.Sprintf("%s:%d", *host, *port)
	}

	stop := make(chan os.Signal, 2)
	signal.Notify(stop, syscall.SIGTERM, syscall.SIGINT)

	w.emitInfo()

	mqtt.DEBUG = pahoLog{"DEBUG"}
	mqtt.WARN = pahoLog{"WARN"}
	mqtt.ERROR = pahoLog{"ERROR"}
	mqtt.CRITICAL = pahoLog{"CRITICAL"}

	opts := mqtt.NewClientOptions()
	opts.AddBroker("tcp://" + w.broker)
	opts.SetClientID(*clientID)
	opts.SetCleanSession(w.clean)
	opts.SetKeepAlive(time.Duration(*keepalive) * time.Second)
	opts.SetProtocolVersion(4)
	// AutoReconnect (true), PingTimeout (10 s), ConnectTimeout (30 s) and MaxReconnectInterval
	// (10 min) keep the library's defaults.
	if *willTopic != "" {
		opts.SetBinaryWill(*willTopic, []byte(*willPayload), byte(*willQos), *willRetain == 1)
	}
	opts.SetDefaultPublishHandler(func(c mqtt.Client, m mqtt.Message) {
		fields := []field{{"topic", m.Topic()}, {"qos", int(m.Qos())}, {"dup", m.Duplicate()},
			{"retain", m.Retained()}, {"payload_len", len(m.Payload())}}
		if m.Qos() > 0 {
			fields = append(fields, field{"packet_id", int(m.MessageID())})
		}
		if seq, ts, ok := decodePayload(m.Payload()); ok {
			fields = append(fields, field{"seq", seq}, field{"pub_ts_us", ts})
		} else {
			fields = append(fields, field{"foreign", true})
		}
		w.mu.Lock()
		w.emit("message", fields...)
		w.mu.Unlock()
	})
	opts.SetOnConnectHandler(func(c mqtt.Client) {
		filters := make(map[string]byte, len(topics))
		listed := make([]map[string]interface{}, 0, len(topics))
		for _, t := range topics {
			filters[t.filter] = t.qos
			listed = append(listed, map[string]interface{}{"filter": t.filter, "qos": int(t.qos)})
		}
		w.mu.Lock()
		w.emit("subscribe_sent", field{"reason", "always"}, field{"topics", listed})
		w.mu.Unlock()
		tok := c.SubscribeMultiple(filters, nil)
		tok.Wait()
		if err := tok.Error(); err != nil {
			note("SUBSCRIBE failed: %v", err)
			return
		}
		result := tok.(*mqtt.SubscribeToken).Result()
		codes := make([]int, 0, len(topics))
		for _, t := range topics {
			codes = append(codes, int(result[t.filter]))
		}
		w.mu.Lock()
		if w.subackID >= 0 {
			w.emit("suback", field{"packet_id", w.subackID}, field{"codes", codes})
			w.subackID = -1
		}
		w.mu.Unlock()
	})
	opts.SetConnectionLostHandler(func(c mqtt.Client, err error) {
		// Usually already reported from the log line that ended the connection.
		w.mu.Lock()
		if w.connected {
			w.attemptEnd(classify(err), "connection lost: "+err.Error())
		}
		w.mu.Unlock()
	})

	var clientMu sync.Mutex
	var client mqtt.Client
	go func() {
		// 1.1.1 does not retry a failed first connection: done here, with the rhythm of the
		// library's own reconnect loop (client.go reconnect()).
		sleep := time.Second
		for {
			c := mqtt.NewClient(opts)
			clientMu.Lock()
			client = c
			clientMu.Unlock()
			tok := c.Connect()
			tok.Wait()
			err := tok.Error()
			if err == nil {
				return
			}
			w.mu.Lock()
			w.attemptEnd("other", "connect: "+err.Error())
			w.mu.Unlock()
			note("first connection failed (%v); trying again in %v", err, sleep)
			time.Sleep(sleep)
			if sleep < opts.MaxReconnectInterval {
				sleep *= 2
			}
			if sleep > opts.MaxReconnectInterval {
				sleep = opts.MaxReconnectInterval
			}
		}
	}()

	<-stop
	w.mu.Lock()
	connected := w.connected
	w.quiet = true
	w.mu.Unlock()
	clientMu.Lock()
	c := client
	clientMu.Unlock()
	if connected && c != nil {
		done := make(chan struct{})
		go func() {
			c.Disconnect(250)
			close(done)
		}()
		select {
		case <-done:
		case <-time.After(1500 * time.Millisecond):
			note("Disconnect did not return within 1.5 s")
		}
	}
	os.Exit(0)
}
