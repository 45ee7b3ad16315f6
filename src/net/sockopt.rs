//! Socket options applied: the one place each option of a description is set on a socket
//! (see the builder's options block for where and when).

use socket2::Socket;

use crate::desc::error::{Context, Failure, Operation};
use crate::desc::kind::SocketType;
use crate::desc::options::{Keepalive, Multicast, SocketOptions};
use crate::desc::spec::Role;

impl SocketOptions {
    /// Sets what fits a socket the factory just made (`family` is its address family), before
    /// `bind(2)`.
    pub(crate) fn apply_made(
        &self,
        socket: &Socket,
        family: socket2::Domain,
        role: Role,
        socket_type: SocketType,
    ) -> Result<(), Failure> {
        self.apply_made_inner(socket, family, role, socket_type)
            .during(Operation::SetSockOpt)
    }

    /// Sets the per-connection options on an accepted socket; no system call when none is set.
    pub(crate) fn apply_accepted(
        &self,
        socket: &Socket,
        family: socket2::Domain,
    ) -> Result<(), Failure> {
        if !self.per_connection() {
            return Ok(());
        }
        self.apply_connection(socket, family)
            .during(Operation::SetSockOpt)
    }

    fn apply_made_inner(
        &self,
        socket: &Socket,
        family: socket2::Domain,
        role: Role,
        socket_type: SocketType,
    ) -> std::io::Result<()> {
        if let (Some(only), socket2::Domain::IPV6) = (self.only_v6, family) {
            socket.set_only_v6(only)?;
        }
        if let Some(size) = self.send_buffer {
            socket.set_send_buffer_size(size)?;
        }
        if let Some(size) = self.recv_buffer {
            socket.set_recv_buffer_size(size)?;
        }
        if role != Role::Listen {
            self.apply_connection(socket, family)?;
        }
        if socket_type == SocketType::Datagram {
            if let Some(broadcast) = self.broadcast {
                socket.set_broadcast(broadcast)?;
            }
            for join in &self.multicast {
                match join {
                    Multicast::V4 { group, interface } => {
                        socket.join_multicast_v4(group, interface)?
                    }
                    Multicast::V6 { group, interface } => {
                        socket.join_multicast_v6(group, *interface)?
                    }
                }
            }
        }
        Ok(())
    }

    fn apply_connection(&self, socket: &Socket, family: socket2::Domain) -> std::io::Result<()> {
        if let Some(nodelay) = self.nodelay {
            socket.set_tcp_nodelay(nodelay)?;
        }
        match self.keepalive {
            Some(true) if self.keepalive_timings != Keepalive::default() => {
                socket.set_tcp_keepalive(&self.tcp_keepalive())?
            }
            Some(keepalive) => socket.set_keepalive(keepalive)?,
            None => {}
        }
        if let Some(linger) = self.linger {
            socket.set_linger(linger)?;
        }
        match (self.ttl, family) {
            (Some(ttl), socket2::Domain::IPV4) => socket.set_ttl_v4(ttl)?,
            (Some(hops), socket2::Domain::IPV6) => socket.set_unicast_hops_v6(hops)?,
            _ => {}
        }
        Ok(())
    }

    fn tcp_keepalive(&self) -> socket2::TcpKeepalive {
        let timings = self.keepalive_timings;
        let mut keepalive = socket2::TcpKeepalive::new();
        if let Some(time) = timings.time {
            keepalive = keepalive.with_time(time);
        }
        crate::sys::keepalive_probes(keepalive, timings.interval, timings.retries)
    }
}
