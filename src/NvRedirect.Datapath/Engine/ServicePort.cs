using System;
using System.Buffers.Binary;
using System.Threading;
using NvRedirect.Core.Interop;
using NvRedirect.Core.Netlink;
using NvRedirect.Core.Packets;
using Tmds.Linux;
using static Tmds.Linux.LibC;

namespace NvRedirect.Datapath.Engine;

/// <summary>The inline port dp reads frames from and writes allowed frames back to (ctrl_add_srvc_port).</summary>
internal interface IServicePort : IDisposable
{
    /// <summary>Interface name.</summary>
    string Interface { get; }
    /// <summary>Starts the packet thread.</summary>
    void Start();
    /// <summary>Runs <paramref name="work"/> on the packet thread between batches (session table access) and returns its result.</summary>
    T Invoke<T>(Func<T> work);
}

/// <summary>Opens a service port (the real one opens AF_PACKET rings; tests substitute their own).</summary>
internal delegate IServicePort ServicePortOpener(string iface, bool jumbo);

/// <summary>
/// The packet thread of a service port: drains the RX ring in batches (up to <see cref="BatchSize"/> frames), decides
/// each frame with the <see cref="FrameProcessor"/>, copies forwarded frames unchanged into the TX ring, kicks the
/// kernel once per batch, and blocks in poll() when idle. Housekeeping (session expiry, ring statistics, a log line
/// when errors happened) runs once a second. The per-frame path allocates nothing.
/// </summary>
internal sealed unsafe class ServicePort : IServicePort
{
    /// <summary>Frames handled before the TX ring is kicked and housekeeping is looked at.</summary>
    public const int BatchSize = 256;
    private const int LargeBufferSize = 65536 + 64;
    private const int VnetHeaderLength = 10;
    private const int PollInvalid = 0x20, PollFailure = 0x08 | 0x10 | PollInvalid; // POLLNVAL; POLLERR | POLLHUP | POLLNVAL

    private readonly PacketRing _ring;
    private readonly FrameProcessor _processor;
    private readonly WorkloadDirectory _workloads;
    private readonly DatapathClock _clock;
    private readonly Logger _log;
    private readonly byte[] _large = new byte[LargeBufferSize];
    private readonly byte[] _largeTx = new byte[LargeBufferSize + VnetHeaderLength + 4];
    private readonly byte[] _reset = new byte[TcpReset.MaxFrameLength];
    private readonly SafeFd _wake;
    private readonly object _invokeGate = new();
    private readonly ManualResetEventSlim _requestDone = new(false);
    private Request? _request;
    private Thread? _thread;
    private volatile bool _stopping;
    private int _lastTxErrno;
    private long _threadAllocated;
    private long _reportedAt = long.MinValue, _reportedTxErrors, _reportedLost, _reportedDrops;

    private sealed class Request(Action work)
    {
        public readonly Action Work = work;
        public Exception? Failure;
    }

    /// <summary>Interface name.</summary>
    public string Interface => _ring.Interface;
    /// <summary>Called on the packet thread when it stops because of an error (the port then forwards nothing).</summary>
    public Action<Exception>? Failed { get; set; }
    /// <summary>Bytes the packet thread has allocated, sampled after every batch (tests show the frame path adds none).</summary>
    public long PacketThreadAllocatedBytes => Volatile.Read(ref _threadAllocated);

    /// <summary>Wraps an open ring; <see cref="Start"/> begins reading.</summary>
    public ServicePort(PacketRing ring, FrameProcessor processor, WorkloadDirectory workloads, DatapathClock clock, Logger log)
    {
        _ring = ring; _processor = processor; _workloads = workloads; _clock = clock; _log = log;
        int efd = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
        if (efd < 0) throw SyscallException.FromLastError("create the packet thread's wake-up eventfd");
        _wake = new SafeFd(efd);
    }

    /// <summary>Opens <paramref name="iface"/> in <paramref name="ns"/> and wraps it.</summary>
    public static ServicePort Open(string ns, string iface, bool jumbo, FrameProcessor processor, WorkloadDirectory workloads, DatapathClock clock, Logger log)
    {
        var ring = PacketRing.Open(ns, iface, jumbo);
        try { return new ServicePort(ring, processor, workloads, clock, log); }
        catch { ring.Dispose(); throw; }
    }

    /// <inheritdoc/>
    public void Start()
    {
        if (_thread != null) return;
        var g = _ring.Geometry;
        _log.Info($"service port {Interface}: ifindex {_ring.InterfaceIndex}, MTU {_ring.Mtu}, TPACKET_V2 RX {g.RxFrames} + TX {g.TxFrames} slots of {g.FrameSize} bytes");
        _thread = new Thread(Run) { IsBackground = true, Name = "nvr-dp packets " + Interface };
        _thread.Start();
    }

    /// <inheritdoc/>
    public T Invoke<T>(Func<T> work)
    {
        T result = default!;
        var thread = _thread;
        if (thread == null || !thread.IsAlive || thread == Thread.CurrentThread) return work();
        lock (_invokeGate)
        {
            var request = new Request(() => result = work());
            _requestDone.Reset();
            Volatile.Write(ref _request, request);
            Wake();
            while (!_requestDone.Wait(500))
                if (!thread.IsAlive) { Volatile.Write(ref _request, null); return work(); }
            if (request.Failure != null) throw new InvalidOperationException("packet thread request failed: " + request.Failure.Message, request.Failure);
        }
        return result;
    }

    private void Wake()
    {
        ulong one = 1;
        write(_wake.Fd, &one, 8);
    }

    private void Run()
    {
        var pfds = stackalloc pollfd[2];
        long lastSecond = long.MinValue;
        try
        {
            while (!_stopping)
            {
                long now = _clock.NowSeconds;
                if (now != lastSecond)
                {
                    lastSecond = now;
                    Housekeeping(now);
                }
                RunRequest();

                int handled = ProcessBatch(now);
                if (_ring.TxPending > 0) Kick();
                Volatile.Write(ref _threadAllocated, GC.GetAllocatedBytesForCurrentThread());
                if (handled > 0) continue;

                pfds[0] = new pollfd { fd = _ring.Fd, events = POLLIN };
                pfds[1] = new pollfd { fd = _wake.Fd, events = POLLIN };
                int r = Native.poll(pfds, 2, 1000);
                if (r < 0 && Native.LastErrno != EINTR) throw SyscallException.FromLastError($"wait for frames on {Interface}");
                if (r > 0 && (pfds[1].revents & POLLIN) != 0)
                {
                    ulong value;
                    read(_wake.Fd, &value, 8);
                }
                if (r > 0 && (pfds[0].revents & PollFailure) != 0)
                {
                    int err = _ring.TakeSocketError();
                    _log.Warn($"service port {Interface}: socket reports {(err == 0 ? "an error" : Native.ErrnoName(err) + " (" + Native.StrError(err) + ")")}; still listening");
                    if ((pfds[0].revents & PollInvalid) != 0) throw new InvalidOperationException("the packet socket was closed");
                }
            }
        }
        catch (Exception e)
        {
            _log.Error($"service port {Interface}: packet thread stopped: {e}");
            Failed?.Invoke(e);
        }
        finally
        {
            RunRequest();
        }
    }

    // Once a second: expire sessions, collect the kernel's ring drops, and log a summary of errors (at most every 10 s).
    private void Housekeeping(long now)
    {
        var c = _processor.Counters;
        _processor.Sessions.Expire(now);
        c.RingDrops += _ring.ReadStatistics().Drops;
        bool changed = c.TxErrors != _reportedTxErrors || c.LostLargeFrames != _reportedLost || c.RingDrops != _reportedDrops;
        if (!changed || now - _reportedAt < 10) return;
        _log.Warn($"{Interface}: {c.TxErrors - _reportedTxErrors} transmit errors (last: {Native.ErrnoName(_lastTxErrno)}), "
            + $"{c.LostLargeFrames - _reportedLost} over-sized frames lost, {c.RingDrops - _reportedDrops} frames dropped by a full RX ring");
        _reportedAt = now;
        _reportedTxErrors = c.TxErrors;
        _reportedLost = c.LostLargeFrames;
        _reportedDrops = c.RingDrops;
    }

    private void RunRequest()
    {
        var request = Volatile.Read(ref _request);
        if (request == null) return;
        try { request.Work(); }
        catch (Exception e) { request.Failure = e; }
        Volatile.Write(ref _request, null);
        _requestDone.Set();
    }

    private int ProcessBatch(long now)
    {
        var workloads = _workloads.Current;
        var c = _processor.Counters;
        int n = 0;
        for (; n < BatchSize; n++)
        {
            byte* slot = _ring.PeekRx();
            if (slot == null) break;
            uint status = *(uint*)(slot + TPacket.OffStatus);
            int length = (int)*(uint*)(slot + TPacket.OffLen);
            int captured = (int)*(uint*)(slot + TPacket.OffSnapLen);
            ushort vlanTci = *(ushort*)(slot + TPacket.OffVlanTci);
            ushort vlanTpid = (status & TPacket.StatusVlanTpidValid) != 0 ? *(ushort*)(slot + TPacket.OffVlanTpid) : (ushort)0x8100;
            bool vlan = (status & TPacket.StatusVlanValid) != 0;
            bool outgoing = slot[TPacket.OffPacketType] == PacketSocket.PacketOutgoing;

            if (length > captured)
            {
                // larger than a slot: the whole frame waits in the socket queue when the kernel could copy it
                if ((status & TPacket.StatusCopy) != 0)
                {
                    int full = _ring.ReceiveFull(_large);
                    if (full < 0 || full > _large.Length) c.LostLargeFrames++;
                    else if (outgoing) c.OutgoingSkipped++;
                    else HandleLarge(full, status, vlan, vlanTci, vlanTpid, workloads, now);
                }
                else c.LostLargeFrames++;
            }
            else if (outgoing) c.OutgoingSkipped++;
            else
            {
                var frame = new ReadOnlySpan<byte>(slot + *(ushort*)(slot + TPacket.OffMac), captured);
                var verdict = _processor.Process(frame, length, workloads, now, out var info);
                if (verdict == FrameVerdict.Forward) Transmit(frame, in info, status, vlan, vlanTci, vlanTpid);
                else if (verdict == FrameVerdict.Reset) SendResets(frame, in info, vlan, vlanTci, vlanTpid);
            }
            _ring.ReleaseRx(slot);
        }
        return n;
    }

    private void Transmit(ReadOnlySpan<byte> frame, in FrameInfo info, uint status, bool vlan, ushort tci, ushort tpid)
    {
        var c = _processor.Counters;
        int extra = vlan ? 4 : 0;
        int total = frame.Length + extra;
        if (total > _ring.TxSlotCapacity)
        {
            frame.CopyTo(_large);
            SendLarge(_large.AsSpan(0, frame.Length), in info, status, vlan, tci, tpid);
            return;
        }
        byte* data = _ring.ReserveTx(out bool rejected);
        if (data == null)
        {
            Kick();
            data = _ring.ReserveTx(out rejected);
            if (data == null) { c.TxDropped++; return; }
        }
        if (rejected) { c.TxErrors++; _lastTxErrno = EINVAL; } // the kernel refused the frame that last used this slot
        var output = new Span<byte>(data, total);
        WriteFrame(frame, output, vlan, tci, tpid);
        if ((status & TPacket.StatusCsumNotReady) != 0 && Checksum.CompleteTransportChecksum(output, info.L3Offset + extra))
            c.ChecksumsCompleted++;
        _ring.CommitTx(total);
        c.TxPackets++;
        c.TxBytes += total;
    }

    /// <summary>Copies a frame, putting back the 802.1Q tag the kernel moved into the ring header (tp_vlan_tci).</summary>
    private static void WriteFrame(ReadOnlySpan<byte> frame, Span<byte> output, bool vlan, ushort tci, ushort tpid)
    {
        if (!vlan) { frame.CopyTo(output); return; }
        frame[..12].CopyTo(output);
        BinaryPrimitives.WriteUInt16BigEndian(output[12..], tpid);
        BinaryPrimitives.WriteUInt16BigEndian(output[14..], tci);
        frame[12..].CopyTo(output[16..]);
    }

    private void HandleLarge(int length, uint status, bool vlan, ushort tci, ushort tpid, WorkloadTable workloads, long now)
    {
        var c = _processor.Counters;
        c.LargeFrames++;
        var frame = _large.AsSpan(0, length);
        var verdict = _processor.Process(frame, length, workloads, now, out var info);
        if (verdict == FrameVerdict.Forward) SendLarge(frame, in info, status, vlan, tci, tpid);
        else if (verdict == FrameVerdict.Reset) SendResets(frame, in info, vlan, tci, tpid);
    }

    /// <summary>Writes a TCP reset to each end of the session <paramref name="frame"/> belongs to (it became denied).</summary>
    private void SendResets(ReadOnlySpan<byte> frame, in FrameInfo info, bool vlan, ushort tci, ushort tpid)
    {
        for (int i = 0; i < 2; i++)
        {
            int n = TcpReset.Build(frame, in info, towardsSender: i == 1, _reset);
            if (n == 0) return;
            Transmit(_reset.AsSpan(0, n), in info, 0, vlan, tci, tpid);
        }
    }

    /// <summary>
    /// Sends a frame too big for a TX slot on the side socket. A frame above the MTU is a GSO frame (TSO/GRO on the
    /// way in): it goes out as one with a virtio_net_hdr carrying the segment size and the partial checksum, so the
    /// kernel segments and checksums it wherever needed (a plain send() of it fails with EMSGSIZE).
    /// </summary>
    private void SendLarge(ReadOnlySpan<byte> frame, in FrameInfo info, uint status, bool vlan, ushort tci, ushort tpid)
    {
        var c = _processor.Counters;
        int extra = vlan ? 4 : 0;
        var packet = _largeTx.AsSpan(0, VnetHeaderLength + frame.Length + extra);
        var output = packet[VnetHeaderLength..];
        WriteFrame(frame, output, vlan, tci, tpid);
        var header = packet[..VnetHeaderLength];
        header.Clear();
        int l3 = info.L3Offset + extra, l4 = info.L4Offset > 0 ? info.L4Offset + extra : 0;
        bool partial = (status & TPacket.StatusCsumNotReady) != 0 && l4 > 0 && info.Protocol is 6 or 17;
        if (partial)
        {
            header[0] = 1; // VIRTIO_NET_HDR_F_NEEDS_CSUM
            BinaryPrimitives.WriteUInt16LittleEndian(header[6..], (ushort)l4);                              // csum_start
            BinaryPrimitives.WriteUInt16LittleEndian(header[8..], (ushort)(info.Protocol == 6 ? 16 : 6));   // csum_offset
            int ipLength = output.Length - l3;
            if (ipLength > _ring.Mtu)
            {
                int l4Header = info.Protocol == 6 ? (output[l4 + 12] >> 4) * 4 : 8;
                header[1] = info.Protocol == 17 ? (byte)5 : info.IpVersion == 4 ? (byte)1 : (byte)4;       // UDP_L4 / TCPV4 / TCPV6
                BinaryPrimitives.WriteUInt16LittleEndian(header[2..], (ushort)(l4 + l4Header));              // hdr_len
                BinaryPrimitives.WriteUInt16LittleEndian(header[4..], (ushort)(_ring.Mtu - (l4 - l3) - l4Header)); // gso_size
            }
        }
        _ring.Kick(); // keep order with frames already in the TX ring
        int errno = _ring.SendLarge(packet);
        if (errno != 0) { c.TxErrors++; _lastTxErrno = errno; return; }
        c.TxPackets++;
        c.TxBytes += output.Length;
    }

    private void Kick()
    {
        int errno = _ring.Kick();
        if (errno != 0) { _processor.Counters.TxErrors++; _lastTxErrno = errno; }
    }

    /// <inheritdoc/>
    public void Dispose()
    {
        _stopping = true;
        if (_thread != null)
        {
            Wake();
            _thread.Join();
        }
        _ring.Dispose();
        _wake.Dispose();
        _requestDone.Dispose();
    }
}
