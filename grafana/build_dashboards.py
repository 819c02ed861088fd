#!/usr/bin/env python3
"""Builds the Grafana dashboards of the iskra-ws-sidecar into grafana/dashboards/*.json.

The JSON files are what Grafana provisions (grafana/provisioning/dashboards/iskra.yml); this script is
their source, so that panel ids, the datasource and the `dashboard` variable stay the same everywhere.
Edit here, run `python3 grafana/build_dashboards.py`, commit both. tests/stack/test_grafana.py fails
when the JSON and this script disagree.

Fixed uids and panel ids are a contract: the alerts' dashboard_url annotations
(prometheus/rules/*.yml) link to /d/<uid>/<slug>?viewPanel=<id>.
"""
import json
import pathlib
import sys

DS = {"type": "prometheus", "uid": "prometheus"}
SEL = 'iskra_dashboard=~"$dashboard"'
OUT = pathlib.Path(__file__).resolve().parent / "dashboards"


def target(expr, legend="", ref="A", instant=False, fmt="time_series", exemplar=False):
    t = {"datasource": DS, "refId": ref, "expr": expr, "legendFormat": legend, "range": not instant,
         "instant": instant, "format": fmt}
    if exemplar:
        t["exemplar"] = True
    return t


def targets(*specs, **kw):
    """specs: (expr, legend) pairs; refIds A, B, C …"""
    return [target(e, l, ref=chr(ord("A") + i), **kw) for i, (e, l) in enumerate(specs)]


def thresholds(*steps):
    out = [{"color": "green", "value": None}]
    out += [{"color": c, "value": v} for v, c in steps]
    return {"mode": "absolute", "steps": out}


def panel(pid, kind, title, description, tgts, w=12, h=8, unit=None, steps=(), extra_defaults=None,
          options=None, min_=None, max_=None, mappings=None, transformations=None):
    defaults = {"thresholds": thresholds(*steps)}
    if unit:
        defaults["unit"] = unit
    if min_ is not None:
        defaults["min"] = min_
    if max_ is not None:
        defaults["max"] = max_
    if mappings:
        defaults["mappings"] = mappings
    if kind == "timeseries":
        defaults["custom"] = {"drawStyle": "line", "lineWidth": 1, "fillOpacity": 10, "showPoints": "never",
                              "spanNulls": False,
                              "thresholdsStyle": {"mode": "line" if steps else "off"}}
    if extra_defaults:
        defaults.update(extra_defaults)
    p = {"id": pid, "type": kind, "title": title, "description": description, "datasource": DS,
         "gridPos": {"w": w, "h": h}, "targets": tgts,
         "fieldConfig": {"defaults": defaults, "overrides": []},
         "options": options or default_options(kind)}
    if transformations:
        p["transformations"] = transformations
    return p


def default_options(kind):
    if kind == "timeseries":
        return {"legend": {"displayMode": "table", "placement": "bottom", "showLegend": True,
                           "calcs": ["lastNotNull", "max"]},
                "tooltip": {"mode": "multi", "sort": "desc"}}
    if kind == "stat":
        return {"reduceOptions": {"calcs": ["lastNotNull"], "fields": "", "values": False},
                "colorMode": "background", "graphMode": "area", "justifyMode": "auto",
                "orientation": "auto", "textMode": "value_and_name"}
    if kind == "bargauge":
        return {"reduceOptions": {"calcs": ["lastNotNull"], "fields": "", "values": False},
                "orientation": "horizontal", "displayMode": "gradient", "showUnfilled": True}
    if kind == "table":
        return {"showHeader": True, "cellHeight": "sm", "footer": {"show": False}}
    if kind == "state-timeline":
        return {"mergeValues": True, "showValue": "auto", "alignValue": "left", "rowHeight": 0.9,
                "legend": {"displayMode": "list", "placement": "bottom", "showLegend": True}}
    return {}


def row(pid, title):
    return {"id": pid, "type": "row", "title": title, "collapsed": False, "gridPos": {"w": 24, "h": 1},
            "panels": []}


def layout(panels):
    """Flow panels left to right, top to bottom, on Grafana's 24-column grid."""
    x = y = row_h = 0
    for p in panels:
        w, h = p["gridPos"]["w"], p["gridPos"]["h"]
        if p["type"] == "row" or x + w > 24:
            y += row_h
            x = row_h = 0
        p["gridPos"] = {"h": h, "w": w, "x": x, "y": y}
        x += w
        row_h = max(row_h, h)
        if p["type"] == "row":
            y += h
            x = row_h = 0
    return panels


def dashboard_variable():
    q = "label_values(websocket_connections_total, iskra_dashboard)"
    return {"name": "dashboard", "label": "Iskra dashboard", "type": "query", "datasource": DS,
            "definition": q, "query": {"query": q, "refId": "PrometheusVariableQueryEditor-VariableQuery",
                                       "qryType": 1},
            "refresh": 2, "includeAll": True, "multi": True, "allValue": ".*", "sort": 1, "hide": 0,
            "current": {"selected": True, "text": ["All"], "value": ["$__all"]}, "options": [], "regex": ""}


def alerts_annotation():
    return {"name": "WebSocket alerts", "datasource": DS, "enable": True, "iconColor": "red",
            "expr": 'ALERTS{alertname=~"WebSocket.*", alertstate="firing", dashboard=~"$dashboard"}',
            "step": "30s", "titleFormat": "{{alertname}}",
            "textFormat": "{{dashboard}} · voice {{voice}} · seam {{seam}} · {{severity}}",
            "tagKeys": "severity,voice,seam", "useValueForTime": False}


def grafana_annotation():
    return {"builtIn": 1, "datasource": {"type": "grafana", "uid": "-- Grafana --"}, "enable": True,
            "hide": True, "iconColor": "rgba(0, 211, 255, 1)", "name": "Annotations & Alerts",
            "type": "dashboard"}


def dashboard(uid, title, description, panels, refresh="5s", time_from="now-1h", tags=()):
    return {
        "uid": uid, "title": title, "description": description,
        "tags": ["iskra", "websocket", *tags], "timezone": "browser", "editable": True,
        "graphTooltip": 1, "schemaVersion": 39, "version": 1, "refresh": refresh,
        "time": {"from": time_from, "to": "now"},
        "timepicker": {"refresh_intervals": ["5s", "10s", "30s", "1m", "5m", "15m", "1h"]},
        "templating": {"list": [dashboard_variable()]},
        "annotations": {"list": [grafana_annotation(), alerts_annotation()]},
        "links": [{"title": "Iskra WebSocket", "type": "dashboards", "tags": ["iskra", "websocket"],
                   "asDropdown": True, "includeVars": True, "keepTime": True}],
        "panels": layout(panels),
    }


def hq(q, metric, by="iskra_dashboard"):
    return (f"histogram_quantile({q}, sum by ({by}, le) "
            f"(rate({metric}_bucket{{{SEL}}}[$__rate_interval])))")


# --------------------------------------------------------------------------------------------------
def overview():
    ps = [
        panel(1, "stat", "Connection status",
              "Open client sessions now, and handshakes by outcome over the selected range: connected = "
              "upgrade done, failed = the upstream/sidecar side failed the handshake (502/503/504), "
              "disconnected = session ended. (The seed's stat, plus the failures it did not count.)",
              targets((f"sum(websocket_server_active_connections{{{SEL}}})", "active now"),
                      (f"sum by (state) (increase(websocket_connections_total{{{SEL}}}[$__range]))", "{{state}}")),
              w=8, h=8, unit="short"),
        panel(2, "timeseries", "Handshake latency p50 / p95 / p99",
              "Handshake duration percentiles from the websocket_handshake_duration_seconds histogram "
              "(the seed drew averages, which hide the slow tail). Lines: SLO 185 ms, warning 500 ms "
              "(WebSocketLatencyWarning, on p95), critical 1 s. Exemplars link to the trace in Tempo.",
              targets((hq("0.50", "websocket_handshake_duration_seconds"), "{{iskra_dashboard}} p50"),
                      (hq("0.95", "websocket_handshake_duration_seconds"), "{{iskra_dashboard}} p95"),
                      (hq("0.99", "websocket_handshake_duration_seconds"), "{{iskra_dashboard}} p99"),
                      exemplar=True),
              w=16, h=8, unit="s", steps=((0.185, "yellow"), (0.5, "orange"), (1, "red")), min_=0),
        panel(3, "timeseries", "Error rate by error type",
              "Errors per second by Iskra error class (CONNECTION_TIMEOUT, AUTHENTICATION_FAILED, "
              "SERVER_OVERLOAD, NETWORK_ERROR, PROTOCOL_ERROR, UNKNOWN). The alert compares their sum "
              "to handshake attempts: warning above 1 %, critical above 5 %.",
              targets((f"sum by (error_type) (rate(websocket_errors_total{{{SEL}}}[$__rate_interval]))",
                       "{{error_type}}")),
              w=12, h=8, unit="reqps", min_=0),
        panel(4, "timeseries", "Reconnection attempts by endpoint",
              "The prober's reconnection attempts per second by endpoint (primary and backups).",
              targets((f"sum by (endpoint) (rate(websocket_reconnections_total{{{SEL}}}[$__rate_interval]))",
                       "{{endpoint}}")),
              w=12, h=8, unit="reqps", min_=0),
        panel(5, "table", "Voice integration status",
              "How often each Iskra voice answered an event over the selected range, per dashboard "
              "(alarm, concern, courage, curiosity, mercy, celebration).",
              [target(f"sum by (iskra_dashboard, voice) (increase(websocket_voice_alerts_total{{{SEL}}}[$__range]))",
                      instant=True, fmt="table")],
              w=8, h=8, unit="short",
              transformations=[{"id": "organize", "options": {
                  "excludeByName": {"Time": True},
                  "renameByName": {"iskra_dashboard": "dashboard", "voice": "voice",
                                   "Value": "activations"}}}]),
        panel(6, "timeseries", "Handshake availability and error ratio (5m)",
              "The recorded SLIs the alerts evaluate: availability = connected / (connected + failed) "
              "(warning below 99 %, critical below 95 %, SLO 99.9 %) and errors / handshake attempts "
              "(warning above 1 %, critical above 5 %).",
              targets((f"iskra_dashboard:websocket_availability:ratio_rate5m{{{SEL}}}", "{{iskra_dashboard}} availability"),
                      (f"iskra_dashboard:websocket_errors:ratio_rate5m{{{SEL}}}", "{{iskra_dashboard}} error ratio")),
              w=16, h=8, unit="percentunit", min_=0),
        panel(7, "timeseries", "Missed heartbeats (5m)",
              "Heartbeats missed in the last 5 minutes by peer (client = the browser's pongs, upstream = "
              "the dashboard server's). The seed's levels: warning from 2, critical from 5.",
              targets((f"sum by (iskra_dashboard, websocket_peer) (increase(websocket_heartbeat_missed_total{{{SEL}}}[5m]))",
                       "{{iskra_dashboard}} {{websocket_peer}}")),
              w=8, h=8, unit="short", steps=((2, "orange"), (5, "red")), min_=0),
        panel(8, "stat", "Fallback",
              "1 while the prober runs on a backup server or a downgraded transport "
              "(SSE, long-polling, polling). WebSocketFallbackActive after a minute.",
              targets((f"max by (iskra_dashboard) (websocket_fallback_active{{{SEL}}})", "{{iskra_dashboard}}")),
              w=8, h=8, steps=((1, "orange"),),
              mappings=[{"type": "value", "options": {"0": {"text": "primary", "color": "green"},
                                                      "1": {"text": "FALLBACK", "color": "orange"}}}]),
        panel(9, "timeseries", "Ping RTT",
              "WebSocket ping/pong round trip: p95 per peer from the histogram, and the seed's average "
              "and maximum per prober endpoint (last minute).",
              targets((hq("0.95", "websocket_ping_rtt_seconds", by="iskra_dashboard, websocket_peer"),
                       "{{iskra_dashboard}} {{websocket_peer}} p95"),
                      (f"max by (iskra_dashboard, endpoint) (websocket_avg_latency_seconds{{{SEL}}})",
                       "{{iskra_dashboard}} {{endpoint}} avg"),
                      (f"max by (iskra_dashboard, endpoint) (websocket_max_latency_seconds{{{SEL}}})",
                       "{{iskra_dashboard}} {{endpoint}} max")),
              w=8, h=8, unit="s", min_=0),
        panel(10, "table", "Active WebSocket alerts",
              "Firing alerts with their voice and seam (the seed's alert annotations).",
              [target('sum by (alertname, severity, voice, seam, dashboard) '
                      '(ALERTS{alertname=~"WebSocket.*", alertstate="firing", dashboard=~"$dashboard"})',
                      instant=True, fmt="table")],
              w=12, h=8,
              transformations=[{"id": "organize", "options": {"excludeByName": {"Time": True, "Value": True}}}]),
        panel(11, "stat", "Sidecar up",
              "Whether Prometheus can scrape each sidecar (WebSocketSidecarDown after a minute at 0).",
              targets((f'up{{job="iskra-ws-sidecar", {SEL}}}', "{{instance}}")),
              w=6, h=8, steps=(),
              extra_defaults={"color": {"mode": "thresholds"}},
              mappings=[{"type": "value", "options": {"0": {"text": "DOWN", "color": "red"},
                                                      "1": {"text": "up", "color": "green"}}}]),
        panel(12, "timeseries", "Sidecar self-telemetry",
              "Lifecycle events dropped on the full channel, and telemetry items exported, failed "
              "(kept in the spool for retry) and dropped (beyond the spool budget) per signal.",
              targets((f"sum by (iskra_dashboard) (rate(iskra_sidecar_events_dropped_total{{{SEL}}}[$__rate_interval]))",
                       "{{iskra_dashboard}} events dropped"),
                      (f"sum by (iskra_dashboard, signal) (rate(iskra_sidecar_telemetry_dropped_total{{{SEL}}}[$__rate_interval]))",
                       "{{iskra_dashboard}} {{signal}} dropped"),
                      (f"sum by (iskra_dashboard, signal) (rate(iskra_sidecar_telemetry_failed_total{{{SEL}}}[$__rate_interval]))",
                       "{{iskra_dashboard}} {{signal}} failed"),
                      (f"sum by (iskra_dashboard, signal) (rate(iskra_sidecar_telemetry_exported_total{{{SEL}}}[$__rate_interval]))",
                       "{{iskra_dashboard}} {{signal}} exported")),
              w=6, h=8, unit="reqps", min_=0),
        panel(13, "timeseries", "Dashboard restarts: sessions resumed vs given up",
              "Sessions whose dashboard connection went away at a restart (resume.hold_ms > 0): resumed = "
              "held and carried on by a new connection, the browser saw nothing; gave up = the client got "
              "1012 (or 1001 on shutdown), by reason (hold_timeout: the restart outlasted the window, "
              "buffer_full, mid_frame, …). WebSocketResumesGivingUp warns when more than 10 % give up.",
              targets((f'sum by (iskra_dashboard) (increase(websocket_resumes_total{{outcome="resumed", {SEL}}}[$__rate_interval]))',
                       "{{iskra_dashboard}} resumed"),
                      (f'sum by (iskra_dashboard, reason) (increase(websocket_resumes_total{{outcome="gave_up", {SEL}}}[$__rate_interval]))',
                       "{{iskra_dashboard}} gave up: {{reason}}")),
              w=24, h=8, unit="short", min_=0),
    ]
    return dashboard("iskra-ws-overview", "WebSocket overview",
                     "The seed's WebSocket dashboard for Pulse, Seams and Voices, as the sidecar sees it.",
                     ps, tags=("overview",))


# --------------------------------------------------------------------------------------------------
def budget_left(bad_num, total, budget):
    return f"1 - (({bad_num}) / ({total})) / {budget}"


def slos():
    fail_r = (f'sum by (iskra_dashboard) (increase(websocket_connections_total{{state="failed", {SEL}}}[$__range])) '
              f'or sum by (iskra_dashboard) (increase(websocket_connections_total{{state="connected", {SEL}}}[$__range])) * 0')
    att_r = f'sum by (iskra_dashboard) (increase(websocket_connections_total{{state=~"connected|failed", {SEL}}}[$__range]))'
    fast_r = f'sum by (iskra_dashboard) (increase(websocket_handshake_duration_seconds_bucket{{le="0.185", {SEL}}}[$__range]))'
    all_r = f'sum by (iskra_dashboard) (increase(websocket_handshake_duration_seconds_count{{{SEL}}}[$__range]))'
    burn_steps = ((1, "yellow"), (3, "orange"), (6, "red"), (14.4, "dark-red"))

    def burn(slo, budget):
        return targets(*[(f'iskra_dashboard:slo_errors:ratio_rate{w}{{slo="{slo}", {SEL}}} / {budget}',
                          f"{{{{iskra_dashboard}}}} {w}") for w in ("5m", "30m", "1h", "2h", "6h", "1d", "3d")])

    ps = [
        panel(1, "stat", "Availability SLI (range)",
              "Share of handshake attempts that succeeded over the selected range (objective 99.9 %).",
              targets((f"1 - ({fail_r}) / ({att_r})", "{{iskra_dashboard}}")),
              w=6, h=6, unit="percentunit", min_=0, max_=1,
              extra_defaults={"thresholds": {"mode": "absolute", "steps": [
                  {"color": "red", "value": None}, {"color": "orange", "value": 0.99},
                  {"color": "green", "value": 0.999}]}, "decimals": 3}),
        panel(2, "stat", "Availability error budget left (range)",
              "1 − (failed ratio ÷ 0.1 %) over the selected range; the default range is the 30-day "
              "SLO period. Below 0 the budget is spent.",
              targets((budget_left(fail_r, att_r, "0.001"), "{{iskra_dashboard}}")),
              w=6, h=6, unit="percentunit",
              extra_defaults={"thresholds": {"mode": "absolute", "steps": [
                  {"color": "red", "value": None}, {"color": "orange", "value": 0.25},
                  {"color": "green", "value": 0.5}]}}),
        panel(3, "stat", "Latency SLI (range)",
              "Share of handshakes that finished within 185 ms over the selected range (objective 99 %).",
              targets((f"({fast_r}) / ({all_r})", "{{iskra_dashboard}}")),
              w=6, h=6, unit="percentunit", min_=0, max_=1,
              extra_defaults={"thresholds": {"mode": "absolute", "steps": [
                  {"color": "red", "value": None}, {"color": "orange", "value": 0.95},
                  {"color": "green", "value": 0.99}]}, "decimals": 3}),
        panel(4, "stat", "Latency error budget left (range)",
              "1 − (share of handshakes slower than 185 ms ÷ 1 %) over the selected range.",
              targets((f"1 - (1 - ({fast_r}) / ({all_r})) / 0.01", "{{iskra_dashboard}}")),
              w=6, h=6, unit="percentunit",
              extra_defaults={"thresholds": {"mode": "absolute", "steps": [
                  {"color": "red", "value": None}, {"color": "orange", "value": 0.25},
                  {"color": "green", "value": 0.5}]}}),
        panel(5, "timeseries", "Availability burn rate",
              "Failed-handshake ratio ÷ 0.1 % per window. Pages: 1h and 5m above 14.4, or 6h and 30m "
              "above 6 (WebSocketAvailabilityBudgetBurnFast). Tickets: 1d and 2h above 3, or 3d and 6h "
              "above 1 (…Slow).",
              burn("availability", "0.001"), w=12, h=9, unit="x", steps=burn_steps, min_=0),
        panel(6, "timeseries", "Latency burn rate",
              "Ratio of handshakes slower than 185 ms ÷ 1 % per window; same pairs and factors as "
              "availability (WebSocketLatencyBudgetBurnFast / …Slow).",
              burn("latency", "0.01"), w=12, h=9, unit="x", steps=burn_steps, min_=0),
        panel(7, "table", "SLO alerts",
              "Burn-rate alerts pending or firing.",
              [target('sum by (alertname, alertstate, severity, voice, dashboard, slo) '
                      '(ALERTS{alertname=~"WebSocket.*BudgetBurn.*", dashboard=~"$dashboard"})',
                      instant=True, fmt="table")],
              w=24, h=6,
              transformations=[{"id": "organize", "options": {"excludeByName": {"Time": True, "Value": True}}}]),
    ]
    return dashboard("iskra-ws-slos", "WebSocket SLOs",
                     "Availability (99.9 %) and handshake latency (99 % within 185 ms) SLOs, error budgets "
                     "and multi-window burn rates per Iskra dashboard.",
                     ps, refresh="1m", time_from="now-30d", tags=("slo",))


# --------------------------------------------------------------------------------------------------
def voices_seams():
    alerts = 'ALERTS{alertname=~"WebSocket.*", alertstate="firing", dashboard=~"$dashboard"}'
    ps = [
        row(100, "Voices"),
        panel(1, "timeseries", "Voice activations",
              "Which Iskra voice answered the sidecar's events, per second (first matching rule on the "
              "event's pain / trust / chaos).",
              targets((f"sum by (voice) (rate(websocket_voice_alerts_total{{{SEL}}}[$__rate_interval]))", "{{voice}}")),
              w=12, h=8, unit="reqps", min_=0),
        panel(2, "bargauge", "Voices raised (range)",
              "Voice activations over the selected range.",
              [target(f"sum by (voice) (increase(websocket_voice_alerts_total{{{SEL}}}[$__range]))", "{{voice}}",
                      instant=True)],
              w=6, h=8, unit="short"),
        panel(3, "bargauge", "Firing alerts by voice",
              "Alertmanager's voices: critical → alarm, warning → concern.",
              [target(f"count by (voice) ({alerts})", "{{voice}}", instant=True)],
              w=6, h=8, unit="short"),
        row(101, "Seams"),
        panel(4, "bargauge", "Firing alerts by seam",
              "Which seam between components the firing alerts point at.",
              [target(f"count by (seam) ({alerts})", "{{seam}}", instant=True)],
              w=6, h=8, unit="short"),
        panel(5, "timeseries", "network_infrastructure: failed handshakes and upstream connect",
              "Failed handshakes per second, and p95 of the upstream TCP/WebSocket connect per upstream.",
              targets((f'sum by (iskra_dashboard) (rate(websocket_connections_total{{state="failed", {SEL}}}[$__rate_interval]))',
                       "{{iskra_dashboard}} failed/s"),
                      (hq("0.95", "websocket_upstream_connect_duration_seconds",
                          by="iskra_dashboard, websocket_upstream_name"),
                       "{{iskra_dashboard}} {{websocket_upstream_name}} connect p95")),
              w=9, h=8, min_=0),
        panel(6, "timeseries", "communication_protocol: closes and missed heartbeats",
              "Close frames per second by code and initiator, and missed heartbeats by peer.",
              targets((f"sum by (websocket_close_code, websocket_close_initiator) (rate(websocket_closes_total{{{SEL}}}[$__rate_interval]))",
                       "close {{websocket_close_code}} by {{websocket_close_initiator}}"),
                      (f"sum by (websocket_peer) (rate(websocket_heartbeat_missed_total{{{SEL}}}[$__rate_interval]))",
                       "missed heartbeat ({{websocket_peer}})")),
              w=9, h=8, unit="reqps", min_=0),
        panel(7, "timeseries", "data_contract: protocol errors by rule",
              "Frames that broke an RFC 6455 rule, by rule.",
              targets((f"sum by (websocket_protocol_error_rule) (rate(websocket_protocol_errors_total{{{SEL}}}[$__rate_interval]))",
                       "{{websocket_protocol_error_rule}}")),
              w=8, h=8, unit="reqps", min_=0),
        panel(8, "timeseries", "resilience_mechanisms: fallbacks and reconnects",
              "Fallbacks per second by transport, reconnects per second by upstream, fallback active.",
              targets((f"sum by (websocket_transport) (rate(websocket_fallbacks_total{{{SEL}}}[$__rate_interval]))",
                       "fallback to {{websocket_transport}}"),
                      (f"sum by (websocket_upstream_name) (rate(websocket_reconnects_total{{{SEL}}}[$__rate_interval]))",
                       "reconnect {{websocket_upstream_name}}"),
                      (f"max by (iskra_dashboard) (websocket_fallback_active{{{SEL}}})",
                       "{{iskra_dashboard}} fallback active")),
              w=8, h=8, min_=0),
        panel(9, "timeseries", "load_balancing: connections, messages and buffer",
              "Open sessions, messages per second by direction and frame type, the prober's outbox: "
              "messages held, delivered per second, refused per second by reason.",
              targets((f"sum by (iskra_dashboard) (websocket_server_active_connections{{{SEL}}})",
                       "{{iskra_dashboard}} active"),
                      (f"sum by (network_io_direction, websocket_frame_type) (rate(websocket_messages_total{{{SEL}}}[$__rate_interval]))",
                       "{{network_io_direction}} {{websocket_frame_type}}/s"),
                      (f"sum by (iskra_dashboard) (websocket_buffer_queued{{{SEL}}})",
                       "{{iskra_dashboard}} buffered"),
                      (f"sum by (iskra_dashboard) (rate(websocket_buffer_delivered_total{{{SEL}}}[$__rate_interval]))",
                       "{{iskra_dashboard}} buffer delivered/s"),
                      (f"sum by (reason) (rate(websocket_buffer_dropped_total{{{SEL}}}[$__rate_interval]))",
                       "buffer refused ({{reason}})/s")),
              w=8, h=8, min_=0),
        panel(10, "timeseries", "error_handling: errors by class",
              "Errors per second by Iskra error class.",
              targets((f"sum by (error_type) (rate(websocket_errors_total{{{SEL}}}[$__rate_interval]))", "{{error_type}}")),
              w=8, h=8, unit="reqps", min_=0),
        panel(11, "timeseries", "performance_monitoring: payload and message size",
              "Payload bytes per second by direction and p95 message size.",
              targets((f"sum by (network_io_direction) (rate(websocket_payload_bytes_total{{{SEL}}}[$__rate_interval]))",
                       "{{network_io_direction}} B/s"),
                      (hq("0.95", "websocket_message_size_bytes", by="network_io_direction"),
                       "{{network_io_direction}} message p95 (B)")),
              w=8, h=8, unit="decbytes", min_=0),
        panel(12, "timeseries", "general_operation: sessions",
              "Sessions ended per second, and the median session length by who closed it.",
              targets((f'sum by (iskra_dashboard) (rate(websocket_connections_total{{state="disconnected", {SEL}}}[$__rate_interval]))',
                       "{{iskra_dashboard}} ended/s"),
                      (hq("0.5", "websocket_server_connection_duration_seconds", by="websocket_close_initiator"),
                       "median session, closed by {{websocket_close_initiator}} (s)")),
              w=8, h=8, min_=0),
    ]
    return dashboard("iskra-ws-voices-seams", "WebSocket voices and seams",
                     "The Iskra view: which voices speak and which seams hurt.", ps, tags=("voices", "seams"))


# --------------------------------------------------------------------------------------------------
def probes():
    ps = [
        panel(1, "state-timeline", "Probe success by endpoint and transport",
              "The active prober's result per endpoint and transport (1 = the last probe succeeded).",
              targets((f"max by (iskra_dashboard, endpoint, websocket_transport) (probe_success{{{SEL}}})",
                       "{{iskra_dashboard}} {{endpoint}} {{websocket_transport}}")),
              w=24, h=8, steps=(),
              extra_defaults={"color": {"mode": "thresholds"}, "thresholds": {"mode": "absolute", "steps": [
                  {"color": "red", "value": None}, {"color": "green", "value": 1}]}},
              mappings=[{"type": "value", "options": {"0": {"text": "fail", "color": "red"},
                                                      "1": {"text": "ok", "color": "green"}}}]),
        panel(2, "timeseries", "Probe duration",
              "How long the last probe of each endpoint took.",
              targets((f"max by (iskra_dashboard, endpoint) (probe_duration_seconds{{{SEL}}})",
                       "{{iskra_dashboard}} {{endpoint}}")),
              w=12, h=8, unit="s", min_=0, steps=((0.5, "orange"), (1, "red"))),
        panel(3, "table", "Transport in use",
              "Endpoints and transports whose last probe succeeded (websocket, sse, long_polling, polling).",
              [target(f"max by (iskra_dashboard, endpoint, websocket_transport) (probe_success{{{SEL}}} == 1)",
                      instant=True, fmt="table")],
              w=12, h=8,
              transformations=[{"id": "organize", "options": {"excludeByName": {"Time": True, "Value": True}}}]),
        panel(4, "stat", "Probe availability (range)",
              "Share of probes that succeeded over the selected range, per endpoint.",
              targets((f"avg by (iskra_dashboard, endpoint) (avg_over_time(probe_success{{{SEL}}}[$__range]))",
                       "{{iskra_dashboard}} {{endpoint}}")),
              w=8, h=8, unit="percentunit", min_=0, max_=1,
              extra_defaults={"thresholds": {"mode": "absolute", "steps": [
                  {"color": "red", "value": None}, {"color": "orange", "value": 0.95},
                  {"color": "green", "value": 0.99}]}}),
        panel(5, "timeseries", "Failovers",
              "Fallbacks (failovers to a backup or a downgraded transport) per probe interval, by "
              "transport, and whether a fallback is active.",
              targets((f"sum by (iskra_dashboard, websocket_transport) (increase(websocket_fallbacks_total{{{SEL}}}[$__interval]))",
                       "{{iskra_dashboard}} → {{websocket_transport}}"),
                      (f"max by (iskra_dashboard) (websocket_fallback_active{{{SEL}}})",
                       "{{iskra_dashboard}} fallback active")),
              w=8, h=8, min_=0),
        panel(6, "timeseries", "Reconnects by upstream and error",
              "The prober's reconnect attempts per second by upstream and the error class that caused them.",
              targets((f"sum by (iskra_dashboard, websocket_upstream_name, error_type) (rate(websocket_reconnects_total{{{SEL}}}[$__rate_interval]))",
                       "{{iskra_dashboard}} {{websocket_upstream_name}} {{error_type}}"),
                      (f"sum by (iskra_dashboard, endpoint) (rate(websocket_reconnections_total{{{SEL}}}[$__rate_interval]))",
                       "{{iskra_dashboard}} {{endpoint}} (seed)")),
              w=8, h=8, unit="reqps", min_=0),
        panel(7, "timeseries", "Prober latency (seed averages)",
              "The seed's average and maximum ping latency per endpoint over the last minute.",
              targets((f"max by (iskra_dashboard, endpoint) (websocket_avg_latency_seconds{{{SEL}}})",
                       "{{iskra_dashboard}} {{endpoint}} avg"),
                      (f"max by (iskra_dashboard, endpoint) (websocket_max_latency_seconds{{{SEL}}})",
                       "{{iskra_dashboard}} {{endpoint}} max")),
              w=12, h=8, unit="s", min_=0, steps=((0.5, "orange"), (1, "red"))),
        panel(8, "timeseries", "Upstream connect p95 by upstream",
              "p95 of the upstream connect (primary and backups), with the error class of failures. "
              "Exemplars link to the session's trace in Tempo.",
              targets((hq("0.95", "websocket_upstream_connect_duration_seconds",
                          by="iskra_dashboard, websocket_upstream_name, error_type"),
                       "{{iskra_dashboard}} {{websocket_upstream_name}} {{error_type}}"),
                      exemplar=True),
              w=12, h=8, unit="s", min_=0),
    ]
    return dashboard("iskra-ws-probes", "WebSocket probes",
                     "The sidecar's active prober: success per endpoint and transport, failovers, reconnects.",
                     ps, tags=("probes",))


DASHBOARDS = {
    "websocket-overview.json": overview,
    "websocket-slos.json": slos,
    "websocket-voices-seams.json": voices_seams,
    "websocket-probes.json": probes,
}


def render():
    return {name: json.dumps(build(), indent=2, ensure_ascii=False) + "\n" for name, build in DASHBOARDS.items()}


if __name__ == "__main__":
    OUT.mkdir(parents=True, exist_ok=True)
    for name, text in render().items():
        (OUT / name).write_text(text, encoding="utf-8")
        print(f"wrote {OUT / name}", file=sys.stderr)
