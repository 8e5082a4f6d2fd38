//! The QUIC endpoint's UDP socket, bound with the receive buffer
//! `ServerLimits::with_udp_receive_buffer` asks for.

use std::{
    io,
    net::{SocketAddr, UdpSocket},
};

use socket2::SockRef;
use tracing::warn;

/// Binds the UDP socket at `addr` and asks the kernel for a receive buffer of
/// `receive_buffer` bytes (0: the system's default). A smaller grant is not an error:
/// it is logged, with the setting that caps it.
pub(crate) fn bind_udp(addr: SocketAddr, receive_buffer: usize) -> io::Result<UdpSocket> {
    let socket = UdpSocket::bind(addr)?;
    if receive_buffer > 0 {
        let socket = SockRef::from(&socket);
        socket.set_recv_buffer_size(receive_buffer)?;
        let granted = socket.recv_buffer_size()?;
        if granted < receive_buffer {
            warn!(
                %addr,
                asked = receive_buffer,
                granted,
                "the QUIC socket's receive buffer is smaller than \
                 ServerLimits::udp_receive_buffer asks: datagrams arriving in bursts from \
                 many connections may be dropped; raise the kernel's cap \
                 (net.core.rmem_max on Linux)"
            );
        }
    }
    Ok(socket)
}

#[cfg(test)]
mod tests {
    use super::*;

    const LOOPBACK: SocketAddr =
        SocketAddr::new(std::net::IpAddr::V4(std::net::Ipv4Addr::LOCALHOST), 0);

    fn granted(socket: &UdpSocket) -> usize {
        SockRef::from(socket).recv_buffer_size().unwrap()
    }

    #[test]
    fn the_receive_buffer_asked_for_is_granted_within_the_kernels_cap() {
        // 64 KiB is below every kernel's default cap (Linux: 208 KiB)
        let socket = bind_udp(LOOPBACK, 64 << 10).unwrap();
        assert!(granted(&socket) >= 64 << 10, "{}", granted(&socket));
    }

    #[test]
    fn a_receive_buffer_above_the_kernels_cap_is_not_an_error() {
        let socket = bind_udp(LOOPBACK, 1 << 30).unwrap();
        assert!(granted(&socket) > 0);
    }

    #[test]
    fn zero_leaves_the_systems_default() {
        let default = granted(&UdpSocket::bind(LOOPBACK).unwrap());
        assert_eq!(granted(&bind_udp(LOOPBACK, 0).unwrap()), default);
    }
}
