//! A minimal HTTP/1.1 client for the CLI (`kpr stats`, `kpr publish`) and the tests:
//! one request per connection, `Connection: close`, body read to the end, TLS through
//! rustls for `https://`, a bearer token when given. Enough for the register's own
//! statistics API; not a general client (written here because the register's API is
//! all it needs, and a general client would add a second HTTP stack to the binary).

use std::io::{Read, Write};
use std::net::TcpStream;
use std::sync::Arc;
use std::time::Duration;

use anyhow::{Context, bail};

/// A response.
#[derive(Debug, Clone)]
pub struct HttpResponse {
    /// Status code.
    pub status: u16,
    /// Headers, names lowercased.
    pub headers: Vec<(String, String)>,
    /// Body as text.
    pub body: String,
}

impl HttpResponse {
    /// The response itself when its status is `status`, else an error carrying what the
    /// register answered.
    pub fn expect_status(self, status: u16) -> anyhow::Result<HttpResponse> {
        if self.status != status {
            bail!(
                "the register answered {}: {}",
                self.status,
                self.body.trim()
            );
        }
        Ok(self)
    }

    /// A header's value.
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(n, _)| n == name)
            .map(|(_, v)| v.as_str())
    }
}

/// GETs `url` (`http://host:port/path?query`), blocking, with a 60 s timeout, with no
/// token.
pub fn get(url: &str) -> anyhow::Result<HttpResponse> {
    Client::default().request("GET", url)
}

/// POSTs an empty body to `url`, with no token.
pub fn post(url: &str) -> anyhow::Result<HttpResponse> {
    Client::default().request("POST", url)
}

/// A client: TLS settings for `https://` URLs and the token to send.
#[derive(Clone, Debug, Default)]
pub struct Client {
    /// For `https://` URLs (`None`: `https://` is refused).
    pub tls: Option<Arc<rustls::ClientConfig>>,
    /// Sent as `authorization: Bearer …`.
    pub token: Option<String>,
    /// The name the server's certificate must carry, if not the URL's host.
    pub server_name: Option<String>,
    /// How long to wait for the answer (`None`: 60 s).
    pub timeout: Option<Duration>,
}

impl Client {
    /// GETs `url`.
    pub fn get(&self, url: &str) -> anyhow::Result<HttpResponse> {
        self.request("GET", url)
    }

    /// POSTs an empty body to `url`.
    pub fn post(&self, url: &str) -> anyhow::Result<HttpResponse> {
        self.request("POST", url)
    }

    /// One request without a body. An `https://` URL is only ever sent over TLS.
    pub fn request(&self, method: &str, url: &str) -> anyhow::Result<HttpResponse> {
        let (secure, rest) = match (url.strip_prefix("https://"), url.strip_prefix("http://")) {
            (Some(rest), _) => (true, rest),
            (None, Some(rest)) => (false, rest),
            (None, None) => bail!("{url}: only http:// and https:// URLs are supported"),
        };
        let (authority, path) = rest
            .split_once('/')
            .map_or((rest, "/".to_string()), |(a, p)| (a, format!("/{p}")));
        let stream = TcpStream::connect(authority)
            .with_context(|| format!("cannot connect to {authority}"))?;
        stream.set_read_timeout(Some(self.timeout.unwrap_or(Duration::from_secs(60))))?;
        let authorization = self
            .token
            .as_ref()
            .map(|t| format!("Authorization: Bearer {t}\r\n"))
            .unwrap_or_default();
        let head = format!(
            "{method} {path} HTTP/1.1\r\nHost: {authority}\r\nConnection: close\r\nAccept: */*\r\n{authorization}Content-Length: 0\r\n\r\n"
        );
        let raw = if secure {
            let config = self
                .tls
                .clone()
                .with_context(|| format!("{url}: no TLS settings for https://"))?;
            let host = match &self.server_name {
                Some(name) => name.as_str(),
                None => authority
                    .rsplit_once(':')
                    .map_or(authority, |(h, _)| h)
                    .trim_matches(['[', ']']),
            };
            let name = rustls_pki_types::ServerName::try_from(host.to_string())
                .with_context(|| format!("{host} is not a server name"))?;
            let connection = rustls::ClientConnection::new(config, name)?;
            let mut tls = rustls::StreamOwned::new(connection, stream);
            tls.write_all(head.as_bytes())?;
            let mut raw = Vec::new();
            match tls.read_to_end(&mut raw) {
                Ok(_) => {}
                // A server that closes without close_notify after a complete answer.
                Err(e) if e.kind() == std::io::ErrorKind::UnexpectedEof && !raw.is_empty() => {}
                Err(e) => return Err(e).context("TLS connection failed"),
            }
            raw
        } else {
            let mut stream = stream;
            stream.write_all(head.as_bytes())?;
            let mut raw = Vec::new();
            stream.read_to_end(&mut raw)?;
            raw
        };
        parse(raw)
    }
}

fn parse(raw: Vec<u8>) -> anyhow::Result<HttpResponse> {
    let text = String::from_utf8(raw).context("response is not UTF-8")?;
    let (head, body) = text
        .split_once("\r\n\r\n")
        .context("response has no header end")?;
    let mut lines = head.split("\r\n");
    let status: u16 = lines
        .next()
        .and_then(|l| l.split_whitespace().nth(1))
        .and_then(|s| s.parse().ok())
        .context("bad status line")?;
    let headers: Vec<(String, String)> = lines
        .filter_map(|l| l.split_once(':'))
        .map(|(n, v)| (n.trim().to_ascii_lowercase(), v.trim().to_string()))
        .collect();
    let body = if headers
        .iter()
        .any(|(n, v)| n == "transfer-encoding" && v.eq_ignore_ascii_case("chunked"))
    {
        dechunk(body)?
    } else {
        body.to_string()
    };
    Ok(HttpResponse {
        status,
        headers,
        body,
    })
}

fn dechunk(mut body: &str) -> anyhow::Result<String> {
    let mut out = String::new();
    loop {
        let (size, rest) = body.split_once("\r\n").context("bad chunk header")?;
        let size = usize::from_str_radix(size.trim(), 16).context("bad chunk size")?;
        if size == 0 {
            return Ok(out);
        }
        if rest.len() < size {
            bail!("truncated chunk");
        }
        out.push_str(&rest[..size]);
        body = rest[size..].trim_start_matches("\r\n");
    }
}
