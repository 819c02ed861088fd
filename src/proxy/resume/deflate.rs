//! permessage-deflate across a resume. A new upstream connection starts fresh compression contexts:
//! its compressed frames decode fine at the client's old window (a fresh compressor never refers back),
//! but the client's frames would not decode at the new connection's fresh decompressor if the client
//! kept its compression context between messages. So, with resume on, the 101 that goes to the client
//! carries `client_no_context_takeover` (RFC 7692 §7.1.1.1 lets a server add it even when the offer did
//! not ask for it): every client message is compressed on its own.

/// The `Sec-WebSocket-Extensions` value with `client_no_context_takeover` added to its
/// permessage-deflate element; `None` when there is no such element or it already has the parameter.
pub fn with_client_no_context_takeover(value: &str) -> Option<String> {
    let mut changed = false;
    let elements: Vec<String> = value
        .split(',')
        .map(|e| {
            let mut params = e.split(';').map(str::trim);
            let name = params.next().unwrap_or("");
            let has = params.any(|p| p.eq_ignore_ascii_case("client_no_context_takeover"));
            if name.eq_ignore_ascii_case("permessage-deflate") && !has && !changed {
                changed = true;
                format!("{}; client_no_context_takeover", e.trim())
            } else {
                e.trim().to_string()
            }
        })
        .collect();
    changed.then(|| elements.join(", "))
}

/// A response head with its `Sec-WebSocket-Extensions` value rewritten by
/// [`with_client_no_context_takeover`]; `None` when nothing changes.
pub fn rewrite_101(head: &[u8]) -> Option<Vec<u8>> {
    let name = b"sec-websocket-extensions:";
    let mut out = Vec::with_capacity(head.len() + 32);
    let mut changed = false;
    for line in head.split_inclusive(|&b| b == b'\n') {
        let is_ext = line.len() > name.len() && line[..name.len()].eq_ignore_ascii_case(name);
        let value = is_ext
            .then(|| std::str::from_utf8(&line[name.len()..]).ok())
            .flatten()
            .and_then(|v| with_client_no_context_takeover(v.trim()));
        match value {
            Some(v) if !changed => {
                changed = true;
                out.extend_from_slice(b"Sec-WebSocket-Extensions: ");
                out.extend_from_slice(v.as_bytes());
                out.extend_from_slice(b"\r\n");
            }
            _ => out.extend_from_slice(line),
        }
    }
    changed.then_some(out)
}

/// Whether two `Sec-WebSocket-Extensions` values name the same extensions with the same parameters
/// (case, spaces and parameter order aside).
pub fn same_extensions(a: Option<&str>, b: Option<&str>) -> bool {
    fn norm(v: Option<&str>) -> Vec<Vec<String>> {
        v.unwrap_or("")
            .split(',')
            .filter(|e| !e.trim().is_empty())
            .map(|e| {
                let mut parts = e.split(';').map(|p| {
                    p.split('=')
                        .map(|x| x.trim().trim_matches('"').to_ascii_lowercase())
                        .collect::<Vec<_>>()
                        .join("=")
                });
                let name = parts.next().unwrap_or_default();
                let mut params: Vec<String> = parts.collect();
                params.sort();
                std::iter::once(name).chain(params).collect()
            })
            .collect()
    }
    norm(a) == norm(b)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_parameter_is_added_once_to_the_deflate_element_only() {
        let v = "permessage-deflate; client_max_window_bits=15";
        assert_eq!(
            with_client_no_context_takeover(v).unwrap(),
            "permessage-deflate; client_max_window_bits=15; client_no_context_takeover"
        );
        let has = "permessage-deflate; Client_No_Context_Takeover";
        assert_eq!(with_client_no_context_takeover(has), None);
        assert_eq!(with_client_no_context_takeover("x-other"), None);
        let head = b"HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\n\
                     sec-websocket-extensions: permessage-deflate\r\nX: y\r\n\r\n";
        let out = String::from_utf8(rewrite_101(head).unwrap()).unwrap();
        assert!(out.contains(
            "\r\nSec-WebSocket-Extensions: permessage-deflate; client_no_context_takeover\r\nX: y\r\n\r\n"
        ));
        assert_eq!(rewrite_101(b"HTTP/1.1 101 OK\r\n\r\n"), None);
    }

    #[test]
    fn extensions_compare_by_meaning() {
        let a = "permessage-deflate; server_max_window_bits=10; client_max_window_bits=15";
        let b = "Permessage-Deflate;client_max_window_bits=\"15\";  server_max_window_bits=10";
        assert!(same_extensions(Some(a), Some(b)));
        assert!(same_extensions(None, Some("")));
        assert!(!same_extensions(Some(a), Some("permessage-deflate")));
        assert!(!same_extensions(Some(a), None));
    }
}
