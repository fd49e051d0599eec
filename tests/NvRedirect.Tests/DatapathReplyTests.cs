using System;
using System.Buffers.Binary;
using System.Collections.Generic;
using System.Linq;
using NvRedirect.Core.Datapath;
using NvRedirect.Datapath.Control;
using NvRedirect.Datapath.Engine;
using Xunit;

using NvRedirect.Core.Protocol;

namespace NvRedirect.Tests;

/// <summary>Binary replies against NeuVector's defs.h layouts (DPMsgHdr, DPMsgSessionCount, DPMsgSessionHdr, DPMsgSession).</summary>
public class DatapathReplyTests
{
    [Fact]
    public void Keep_alive_reply_is_kind_10_length_8_and_the_sequence_big_endian()
    {
        // the reference run of NeuVector's dp answered seq 7 with 0a 00 0008 00000007
        Assert.Equal(Convert.FromHexString("0a00000800000007"), Replies.KeepAlive(7));
        Assert.Equal(Convert.FromHexString("0a000008deadbeef"), Replies.KeepAlive(0xdeadbeef));
    }

    [Fact]
    public void Session_count_reply_is_kind_3_with_five_big_endian_counters()
    {
        Assert.Equal(Convert.FromHexString("03000018" + "00000002" + "00000002" + "00000000" + "00000000" + "00000000"),
            Replies.SessionCount(2, 2, 0, 0, 0));
        Assert.Equal(Convert.FromHexString("03000018" + "01020304" + "00000001" + "00000002" + "00000003" + "00000004"),
            Replies.SessionCount(0x01020304, 1, 2, 3, 4));
    }

    // DPMsgSession field by field as defs.h declares it (type sizes; arrays as element size x count)
    private static readonly (string Name, int Size, int Align)[] DefsH =
    [
        ("ID", 4, 4), ("EPMAC", 6, 1), ("EtherType", 2, 2), ("ClientMAC", 6, 1), ("ServerMAC", 6, 1),
        ("ClientIP", 16, 1), ("ServerIP", 16, 1), ("ClientPort", 2, 2), ("ServerPort", 2, 2),
        ("ICMPCode", 1, 1), ("ICMPType", 1, 1), ("IPProto", 1, 1), ("Padding", 1, 1),
        ("ClientPkts", 4, 4), ("ServerPkts", 4, 4), ("ClientBytes", 4, 4), ("ServerBytes", 4, 4),
        ("ClientAsmPkts", 4, 4), ("ServerAsmPkts", 4, 4), ("ClientAsmBytes", 4, 4), ("ServerAsmBytes", 4, 4),
        ("ClientState", 1, 1), ("ServerState", 1, 1), ("Idle", 2, 2), ("Age", 4, 4), ("Life", 2, 2), ("Application", 2, 2),
        ("ThreatID", 4, 4), ("PolicyId", 4, 4), ("PolicyAction", 1, 1), ("Severity", 1, 1), ("Flags", 2, 2),
        ("XffIP", 16, 1), ("XffApp", 2, 2), ("XffPort", 2, 2),
    ];

    [Fact]
    public void Session_layout_matches_the_C_compiler_rules_applied_to_defs_h()
    {
        // x86-64 SysV: each field at the next multiple of its alignment, struct padded to its largest alignment
        var offsets = new Dictionary<string, int>();
        int offset = 0, maxAlign = 1;
        foreach (var (name, size, align) in DefsH)
        {
            offset = (offset + align - 1) / align * align;
            offsets[name] = offset;
            offset += size;
            maxAlign = Math.Max(maxAlign, align);
        }
        int sizeOf = (offset + maxAlign - 1) / maxAlign * maxAlign;
        Assert.Equal(140, sizeOf); // measured on x86-64 in the reference run
        Assert.Equal(SessionLayout.Size, sizeOf);

        var ours = typeof(SessionLayout).GetFields().Where(f => f.IsLiteral && f.Name != "Size")
            .ToDictionary(f => f.Name, f => (int)f.GetRawConstantValue()!);
        var names = new Dictionary<string, string>
        {
            ["ID"] = "Id", ["EPMAC"] = "EndpointMac", ["ClientMAC"] = "ClientMac", ["ServerMAC"] = "ServerMac",
            ["ICMPCode"] = "IcmpCode", ["ICMPType"] = "IcmpType", ["ThreatID"] = "ThreatId",
        };
        foreach (var (name, _, _) in DefsH)
            Assert.True(ours.TryGetValue(names.GetValueOrDefault(name, name), out int value) && value == offsets[name],
                $"{name}: defs.h offset {offsets[name]}, ours {(ours.TryGetValue(names.GetValueOrDefault(name, name), out int v) ? v : -1)}");
        Assert.Equal(DefsH.Length, ours.Count);
    }

    [Fact]
    public void Device_counter_reply_is_kind_4_with_568_bytes_as_defs_h_lays_them_out()
    {
        // DPMsgDeviceCounter: 27 x u64, u64 ParserSessions[20], u64 ParserPackets[20], 4 x u32, 2 x u64
        var fields = Enumerable.Repeat((8, 8), 27).Concat(Enumerable.Repeat((8 * 20, 8), 2)).Concat(Enumerable.Repeat((4, 4), 4))
            .Concat(Enumerable.Repeat((8, 8), 2)).ToArray();
        int offset = 0;
        var offsets = new List<int>();
        foreach (var (size, align) in fields) { offset = (offset + align - 1) / align * align; offsets.Add(offset); offset += size; }
        int sizeOf = (offset + 7) / 8 * 8;
        Assert.Equal(568, sizeOf); // measured on x86-64 in the reference run
        Assert.Equal(DeviceCounterLayout.Size, sizeOf);
        Assert.Equal(DeviceCounterLayout.ParserSessions, offsets[27]);
        Assert.Equal(DeviceCounterLayout.ParserPackets, offsets[28]);
        Assert.Equal(DeviceCounterLayout.PolicyType1Rules, offsets[29]);
        Assert.Equal(DeviceCounterLayout.LimitDropConns, offsets[33]);

        var values = new ulong[27];
        values[(int)DeviceCounter.RXPackets] = 39;
        values[(int)DeviceCounter.TXPackets] = 25;
        values[(int)DeviceCounter.CurLogCaches] = 0x0102030405060708;
        var b = Replies.DeviceCounters(values);
        Assert.Equal(4 + 568, b.Length);
        Assert.Equal(Convert.FromHexString("0400023c"), b.AsSpan(0, 4).ToArray()); // length 572
        Assert.Equal(39UL, BinaryPrimitives.ReadUInt64BigEndian(b.AsSpan(4)));
        Assert.Equal(25UL, BinaryPrimitives.ReadUInt64BigEndian(b.AsSpan(4 + 16)));
        Assert.Equal(0x0102030405060708UL, BinaryPrimitives.ReadUInt64BigEndian(b.AsSpan(4 + 26 * 8)));
        Assert.All(b.AsSpan(4 + 27 * 8).ToArray(), x => Assert.Equal(0, x));
    }

    private static SessionRecord Record(uint id, bool v6 = false, byte protocol = 6) => new(
        id, TestFrames.ContainerMac, v6,
        v6 ? Convert.FromHexString("20010db8000000000000000000000001") : [10, 10, 10, 66],
        v6 ? Convert.FromHexString("20010db8000000000000000000000002") : [10, 10, 10, 88],
        54321, 8080, protocol, 0x0800, TestFrames.HostMac, TestFrames.UnicastAlias, 3, 2, 300, 200, TcpState.Established, TcpState.Established,
        Age: 12, Idle: 3, Life: 1197, SessionFlags.Ingress | SessionFlags.MidStream, TimeoutClass.TcpEstablished);

    [Fact]
    public void A_session_record_is_written_big_endian_at_the_defs_h_offsets()
    {
        var b = new byte[SessionLayout.Size];
        Replies.WriteSession(b, Record(0x01020304).ToWire());
        Assert.Equal(0x01020304u, BinaryPrimitives.ReadUInt32BigEndian(b));
        Assert.Equal("1a27f3873a27", Convert.ToHexString(b, 4, 6).ToLowerInvariant());
        Assert.Equal(0x0800, BinaryPrimitives.ReadUInt16BigEndian(b.AsSpan(10)));
        Assert.Equal("06829c025491", Convert.ToHexString(b, 12, 6).ToLowerInvariant());
        Assert.Equal("4e65755600b4", Convert.ToHexString(b, 18, 6).ToLowerInvariant());
        Assert.Equal("0a0a0a42" + new string('0', 24), Convert.ToHexString(b, 24, 16).ToLowerInvariant()); // IPv4 in the first 4 bytes
        Assert.Equal("0a0a0a58" + new string('0', 24), Convert.ToHexString(b, 40, 16).ToLowerInvariant());
        Assert.Equal(54321, BinaryPrimitives.ReadUInt16BigEndian(b.AsSpan(56)));
        Assert.Equal(8080, BinaryPrimitives.ReadUInt16BigEndian(b.AsSpan(58)));
        Assert.Equal(0, b[60]); Assert.Equal(0, b[61]); // ICMP code/type only for ICMP
        Assert.Equal(6, b[62]);
        Assert.Equal(3u, BinaryPrimitives.ReadUInt32BigEndian(b.AsSpan(64)));
        Assert.Equal(2u, BinaryPrimitives.ReadUInt32BigEndian(b.AsSpan(68)));
        Assert.Equal(300u, BinaryPrimitives.ReadUInt32BigEndian(b.AsSpan(72)));
        Assert.Equal(200u, BinaryPrimitives.ReadUInt32BigEndian(b.AsSpan(76)));
        Assert.Equal(1, b[96]); Assert.Equal(1, b[97]);
        Assert.Equal(3, BinaryPrimitives.ReadUInt16BigEndian(b.AsSpan(98)));   // Idle
        Assert.Equal(12u, BinaryPrimitives.ReadUInt32BigEndian(b.AsSpan(100))); // Age
        Assert.Equal(1197, BinaryPrimitives.ReadUInt16BigEndian(b.AsSpan(104))); // Life
        Assert.Equal(0x0001 | 0x0004, BinaryPrimitives.ReadUInt16BigEndian(b.AsSpan(118))); // INGRESS | MID
        Assert.All(b.AsSpan(120, 20).ToArray(), x => Assert.Equal(0, x)); // no XFF

        var icmp = new byte[SessionLayout.Size];
        Replies.WriteSession(icmp, (Record(1, protocol: 1) with { IcmpTypeCode = 0x0800, ClientPort = 0, ServerPort = 0 }).ToWire());
        Assert.Equal(0, icmp[60]);  // code
        Assert.Equal(8, icmp[61]);  // type: echo request

        var v6 = new byte[SessionLayout.Size];
        Replies.WriteSession(v6, Record(1, v6: true).ToWire());
        Assert.Equal(0x86dd, BinaryPrimitives.ReadUInt16BigEndian(v6.AsSpan(10)));
        Assert.Equal("20010db8000000000000000000000002", Convert.ToHexString(v6, 40, 16).ToLowerInvariant());
    }

    [Theory]
    [InlineData(0, new int[0])]
    [InlineData(1, new[] { 1 })]
    [InlineData(2, new[] { 2 })]   // the reference run: one 288-byte datagram, then the 8-byte terminator
    [InlineData(58, new[] { 58 })]
    [InlineData(59, new[] { 58, 1 })]
    [InlineData(150, new[] { 58, 58, 34 })]
    public void Session_list_is_58_per_datagram_with_more_set_then_a_terminator(int sessions, int[] perMessage)
    {
        var records = Enumerable.Range(1, sessions).Select(i => Record((uint)i)).ToList();
        var messages = Replies.SessionList(records.Select(r => r.ToWire()).ToList());
        Assert.Equal(perMessage.Length + 1, messages.Count);
        uint nextId = 1;
        for (int m = 0; m < perMessage.Length; m++)
        {
            var b = messages[m];
            Assert.Equal(2, b[0]);
            Assert.Equal(1, b[1]);
            Assert.Equal(b.Length, BinaryPrimitives.ReadUInt16BigEndian(b.AsSpan(2)));
            Assert.Equal(8 + 140 * perMessage[m], b.Length);
            Assert.True(b.Length <= 8192);
            Assert.Equal(perMessage[m], BinaryPrimitives.ReadUInt16BigEndian(b.AsSpan(4)));
            Assert.Equal(0, BinaryPrimitives.ReadUInt16BigEndian(b.AsSpan(6)));
            for (int i = 0; i < perMessage[m]; i++)
                Assert.Equal(nextId++, BinaryPrimitives.ReadUInt32BigEndian(b.AsSpan(8 + 140 * i)));
        }
        Assert.Equal(Convert.FromHexString("0200000800000000"), messages[^1]);
    }
}
