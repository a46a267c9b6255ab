/* rawsyn IFACE GW_MAC DST_IP DST_PORT: a TCP handshake by hand through an AF_PACKET socket, the frames
   addressed to GW_MAC whatever DST_IP is (127.0.0.1 included). Prints SYNACK (then ACKED once the data
   sent after the handshake is acknowledged), RST, or NONE; exit 0 on a SYN-ACK, 1 on none, 2 on RST. */
#include <arpa/inet.h>
#include <linux/if_packet.h>
#include <net/ethernet.h>
#include <net/if.h>
#include <netinet/ip.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

static int fd, ifindex;
static uint8_t own_mac[6], gw_mac[6];
static struct in_addr own_ip, dst_ip;
static uint16_t sport, dport;

static uint32_t sum16(const uint8_t *p, size_t len, uint32_t sum) {
    for (; len > 1; p += 2, len -= 2) sum += (uint32_t)(p[0] << 8 | p[1]);
    if (len) sum += (uint32_t)(p[0] << 8);
    return sum;
}

static uint16_t fold(uint32_t sum) {
    while (sum >> 16) sum = (sum & 0xffff) + (sum >> 16);
    return htons((uint16_t)~sum);
}

static void send_tcp(uint8_t flags, uint32_t seq, uint32_t ack, const char *data, size_t len) {
    uint8_t frame[128] = {0};
    struct ether_header *eth = (void *)frame;
    struct iphdr *ip = (void *)(frame + sizeof *eth);
    struct tcphdr *tcp = (void *)((uint8_t *)ip + sizeof *ip);
    memcpy(eth->ether_dhost, gw_mac, 6);
    memcpy(eth->ether_shost, own_mac, 6);
    eth->ether_type = htons(ETHERTYPE_IP);
    ip->version = 4;
    ip->ihl = 5;
    ip->tot_len = htons((uint16_t)(sizeof *ip + sizeof *tcp + len));
    ip->id = htons((uint16_t)rand());
    ip->frag_off = htons(IP_DF);
    ip->ttl = 64;
    ip->protocol = IPPROTO_TCP;
    ip->saddr = own_ip.s_addr;
    ip->daddr = dst_ip.s_addr;
    ip->check = fold(sum16((uint8_t *)ip, sizeof *ip, 0));
    tcp->source = htons(sport);
    tcp->dest = htons(dport);
    tcp->seq = htonl(seq);
    tcp->ack_seq = htonl(ack);
    tcp->doff = 5;
    ((uint8_t *)tcp)[13] = flags;
    tcp->window = htons(64240);
    memcpy((uint8_t *)tcp + sizeof *tcp, data, len);
    uint8_t pseudo[12];
    memcpy(pseudo, &ip->saddr, 4);
    memcpy(pseudo + 4, &ip->daddr, 4);
    pseudo[8] = 0;
    pseudo[9] = IPPROTO_TCP;
    pseudo[10] = (uint8_t)((sizeof *tcp + len) >> 8);
    pseudo[11] = (uint8_t)(sizeof *tcp + len);
    tcp->check = fold(sum16((uint8_t *)tcp, sizeof *tcp + len, sum16(pseudo, 12, 0)));
    struct sockaddr_ll to = {.sll_family = AF_PACKET, .sll_ifindex = ifindex, .sll_halen = 6};
    memcpy(to.sll_addr, gw_mac, 6);
    size_t size = sizeof *eth + sizeof *ip + sizeof *tcp + len;
    if (sendto(fd, frame, size, 0, (struct sockaddr *)&to, sizeof to) != (ssize_t)size) {
        perror("sendto");
        exit(3);
    }
}

/* The next TCP segment from DST_IP:DST_PORT to us within ms milliseconds: its flags, or -1. */
static int receive(int ms, uint32_t *seq, uint32_t *ack) {
    struct timespec start, now;
    clock_gettime(CLOCK_MONOTONIC, &start);
    for (;;) {
        clock_gettime(CLOCK_MONOTONIC, &now);
        long left = ms - ((now.tv_sec - start.tv_sec) * 1000 + (now.tv_nsec - start.tv_nsec) / 1000000);
        if (left <= 0) return -1;
        struct pollfd p = {.fd = fd, .events = POLLIN};
        if (poll(&p, 1, (int)left) <= 0) continue;
        uint8_t buf[2048];
        struct sockaddr_ll from;
        socklen_t fromlen = sizeof from;
        ssize_t n = recvfrom(fd, buf, sizeof buf, 0, (struct sockaddr *)&from, &fromlen);
        if (n < (ssize_t)(sizeof(struct ether_header) + sizeof(struct iphdr) + sizeof(struct tcphdr)))
            continue;
        if (from.sll_pkttype == PACKET_OUTGOING) continue;
        struct iphdr *ip = (void *)(buf + sizeof(struct ether_header));
        if (ip->protocol != IPPROTO_TCP || ip->saddr != dst_ip.s_addr || ip->daddr != own_ip.s_addr)
            continue;
        struct tcphdr *tcp = (void *)((uint8_t *)ip + ip->ihl * 4);
        if (ntohs(tcp->source) != dport || ntohs(tcp->dest) != sport) continue;
        *seq = ntohl(tcp->seq);
        *ack = ntohl(tcp->ack_seq);
        return ((uint8_t *)tcp)[13];
    }
}

int main(int argc, char **argv) {
    if (argc != 5) {
        fprintf(stderr, "usage: %s IFACE GW_MAC DST_IP DST_PORT\n", argv[0]);
        return 3;
    }
    if (sscanf(argv[2], "%hhx:%hhx:%hhx:%hhx:%hhx:%hhx", &gw_mac[0], &gw_mac[1], &gw_mac[2], &gw_mac[3],
               &gw_mac[4], &gw_mac[5]) != 6 ||
        inet_pton(AF_INET, argv[3], &dst_ip) != 1) {
        fprintf(stderr, "bad MAC or address\n");
        return 3;
    }
    dport = (uint16_t)atoi(argv[4]);
    fd = socket(AF_PACKET, SOCK_RAW, htons(ETH_P_IP));
    if (fd < 0) {
        perror("socket(AF_PACKET)");
        return 3;
    }
    struct ifreq ifr = {0};
    strncpy(ifr.ifr_name, argv[1], IFNAMSIZ - 1);
    if (ioctl(fd, SIOCGIFINDEX, &ifr) < 0) { perror("SIOCGIFINDEX"); return 3; }
    ifindex = ifr.ifr_ifindex;
    if (ioctl(fd, SIOCGIFHWADDR, &ifr) < 0) { perror("SIOCGIFHWADDR"); return 3; }
    memcpy(own_mac, ifr.ifr_hwaddr.sa_data, 6);
    ifr.ifr_addr.sa_family = AF_INET;
    if (ioctl(fd, SIOCGIFADDR, &ifr) < 0) { perror("SIOCGIFADDR"); return 3; }
    own_ip = ((struct sockaddr_in *)&ifr.ifr_addr)->sin_addr;
    struct sockaddr_ll bind_to = {.sll_family = AF_PACKET, .sll_protocol = htons(ETH_P_IP), .sll_ifindex = ifindex};
    if (bind(fd, (struct sockaddr *)&bind_to, sizeof bind_to) < 0) { perror("bind"); return 3; }

    srand((unsigned)(time(NULL) ^ getpid()));
    sport = (uint16_t)(40000 + rand() % 20000);
    uint32_t isn = (uint32_t)rand(), seq = 0, ack = 0;
    int flags = -1;
    for (int attempt = 0; attempt < 3 && flags < 0; attempt++) {
        send_tcp(TH_SYN, isn, 0, NULL, 0);
        flags = receive(1000, &seq, &ack);
    }
    if (flags < 0) {
        puts("NONE");
        return 1;
    }
    if (flags & TH_RST) {
        puts("RST");
        return 2;
    }
    if ((flags & (TH_SYN | TH_ACK)) != (TH_SYN | TH_ACK)) {
        printf("FLAGS %#x\n", flags);
        return 3;
    }
    puts("SYNACK");
    fflush(stdout);
    static const char data[] = "hello-from-rawsyn\n";
    size_t len = sizeof data - 1;
    send_tcp(TH_ACK | TH_PUSH, isn + 1, seq + 1, data, len);
    for (int i = 0; i < 10; i++) {
        uint32_t s, a;
        int f = receive(200, &s, &a);
        if (f >= 0 && (f & TH_RST)) break;
        if (f >= 0 && (f & TH_ACK) && a == isn + 1 + len) {
            puts("ACKED");
            break;
        }
    }
    return 0;
}
