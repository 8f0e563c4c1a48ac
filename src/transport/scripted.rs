//! An in-memory peer for fuzzing whole calls: each new connection is served the next scripted
//! response (bytes, then end of stream), and everything the client writes is recorded.

use std::collections::VecDeque;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};

use ureq::config::Config;
use ureq::http::Uri;
use ureq::unversioned::resolver::{ResolvedSocketAddrs, Resolver};
use ureq::unversioned::transport::{Buffers, ConnectionDetails, Connector, NextTimeout, Transport};

use crate::url::port;

use super::buffers::GrowBuffers;
use super::conns::BufferSizes;

/// What the scripted peer says and what it heard.
#[derive(Debug, Default)]
pub(crate) struct Script {
    pub(crate) responses: Mutex<VecDeque<Vec<u8>>>,
    pub(crate) written: Mutex<Vec<Vec<u8>>>,
}

#[derive(Debug)]
pub(crate) struct ScriptedConnector(pub(crate) Arc<Script>);

impl Connector for ScriptedConnector {
    type Out = Box<dyn Transport>;

    fn connect(
        &self,
        details: &ConnectionDetails,
        _: Option<()>,
    ) -> Result<Option<Self::Out>, ureq::Error> {
        let next = self.0.responses.lock().ok().and_then(|mut r| r.pop_front());
        let Some(response) = next else {
            return Err(ureq::Error::Io(
                std::io::ErrorKind::ConnectionRefused.into(),
            ));
        };
        self.0
            .written
            .lock()
            .map_err(|_| ureq::Error::ConnectionFailed)?
            .push(Vec::new());
        Ok(Some(Box::new(ScriptedTransport {
            buffers: GrowBuffers::new(
                BufferSizes {
                    input: details.config.input_buffer_size(),
                    max_input: details.config.max_response_header_size(),
                    output: details.config.output_buffer_size(),
                },
                true,
            ),
            input: response,
            read: 0,
            script: self.0.clone(),
        })))
    }
}

/// Every host resolves to a loopback address without any lookup.
#[derive(Debug)]
pub(crate) struct ScriptedResolver;

impl Resolver for ScriptedResolver {
    fn resolve(
        &self,
        uri: &Uri,
        _: &Config,
        _: NextTimeout,
    ) -> Result<ResolvedSocketAddrs, ureq::Error> {
        let mut out = self.empty();
        out.push(SocketAddr::from(([127, 0, 0, 1], port(uri))));
        Ok(out)
    }
}

#[derive(Debug)]
struct ScriptedTransport {
    buffers: GrowBuffers,
    input: Vec<u8>,
    read: usize,
    script: Arc<Script>,
}

impl Transport for ScriptedTransport {
    fn buffers(&mut self) -> &mut dyn Buffers {
        &mut self.buffers
    }

    fn transmit_output(&mut self, amount: usize, _: NextTimeout) -> Result<(), ureq::Error> {
        self.buffers.request_sent();
        let out = self.buffers.output()[..amount].to_vec();
        if let Some(last) = self
            .script
            .written
            .lock()
            .ok()
            .as_mut()
            .and_then(|w| w.last_mut())
        {
            last.extend_from_slice(&out);
        }
        Ok(())
    }

    fn await_input(&mut self, _: NextTimeout) -> Result<bool, ureq::Error> {
        let buf = self.buffers.append_buf()?;
        let n = buf.len().min(self.input.len() - self.read);
        buf[..n].copy_from_slice(&self.input[self.read..self.read + n]);
        self.read += n;
        self.buffers.appended(n)?;
        Ok(n > 0)
    }

    fn is_open(&mut self) -> bool {
        self.buffers.reusable() && self.read < self.input.len()
    }
}
