using System.Buffers.Binary;
using System.Text;

namespace Peft.Training.IO;

/// <summary>An ONNX initializer or constant: shape, element type and where its bytes live.</summary>
public sealed class OnnxTensor
{
    public const int Float = 1, Int32 = 6, Int64 = 7;

    internal OnnxTensor(string name, long[] dims, int dataType, byte[] buffer, int offset, int length, bool packedVarints)
    {
        Name = name;
        Dims = dims;
        DataType = dataType;
        _buffer = buffer;
        _offset = offset;
        _length = length;
        _varints = packedVarints;
    }

    private readonly byte[] _buffer;
    private readonly int _offset, _length;
    private readonly bool _varints;

    public string Name { get; }
    public long[] Dims { get; }
    /// <summary>ONNX TensorProto.DataType (1 float, 6 int32, 7 int64 ...).</summary>
    public int DataType { get; }
    public long ElementCount => Dims.Aggregate(1L, (a, d) => a * d);

    /// <summary>The values as float32 (float tensors only).</summary>
    public float[] ToFloats()
    {
        if (DataType != Float) throw new PeftUserException($"ONNX tensor '{Name}' is not float32 (data_type {DataType})", UserErrorKind.Invalid);
        var data = new float[_length / 4];
        Buffer.BlockCopy(_buffer, _offset, data, 0, data.Length * 4);
        if (!BitConverter.IsLittleEndian) throw new PlatformNotSupportedException("ONNX raw data is little-endian");
        return data;
    }

    /// <summary>The values as int64 (int32/int64 tensors, raw or packed).</summary>
    public long[] ToInt64s()
    {
        if (DataType is not (Int64 or Int32)) throw new PeftUserException($"ONNX tensor '{Name}' is not an integer tensor (data_type {DataType})", UserErrorKind.Invalid);
        if (_varints)
        {
            var values = new List<long>();
            var r = new ProtoReader(_buffer, _offset, _offset + _length);
            while (!r.AtEnd) values.Add((long)r.ReadVarint());
            return values.ToArray();
        }
        int size = DataType == Int64 ? 8 : 4;
        var result = new long[_length / size];
        var span = _buffer.AsSpan(_offset, _length);
        for (int i = 0; i < result.Length; i++)
            result[i] = size == 8 ? BinaryPrimitives.ReadInt64LittleEndian(span[(i * 8)..]) : BinaryPrimitives.ReadInt32LittleEndian(span[(i * 4)..]);
        return result;
    }
}

/// <summary>One graph node: operator, inputs/outputs by value name, and its tensor/float/int attributes.</summary>
public sealed record OnnxNode(string OpType, string Name, IReadOnlyList<string> Inputs, IReadOnlyList<string> Outputs,
    IReadOnlyDictionary<string, OnnxTensor> TensorAttributes, IReadOnlyDictionary<string, double> NumberAttributes);

/// <summary>
/// The parts of an ONNX <c>ModelProto</c> an importer needs (graph nodes, initializers, input/output names), read
/// straight from the protobuf wire format: field numbers from onnx.proto, no generated classes. Tensor bytes are not
/// copied until asked for, so a 90 MB model is parsed without duplicating it.
/// </summary>
public sealed class OnnxGraph
{
    public List<OnnxNode> Nodes { get; } = new();
    public Dictionary<string, OnnxTensor> Initializers { get; } = new(StringComparer.Ordinal);
    public List<string> Inputs { get; } = new();
    public List<string> Outputs { get; } = new();

    public static OnnxGraph Parse(byte[] model)
    {
        var graph = new OnnxGraph();
        var r = new ProtoReader(model, 0, model.Length);
        bool found = false;
        while (r.TryReadTag(out int field, out int wire))
        {
            if (field == 7 && wire == 2) { graph.ReadGraph(r.Sub()); found = true; }   // ModelProto.graph
            else r.Skip(wire);
        }
        if (!found) throw new PeftUserException("not an ONNX model (no graph)", UserErrorKind.Invalid);
        return graph;
    }

    private void ReadGraph(ProtoReader r)
    {
        while (r.TryReadTag(out int field, out int wire))
        {
            switch (field)
            {
                case 1 when wire == 2: Nodes.Add(ReadNode(r.Sub())); break;
                case 5 when wire == 2:
                    var t = ReadTensor(r.Sub());
                    Initializers[t.Name] = t;
                    break;
                case 11 when wire == 2: Inputs.Add(ReadValueInfoName(r.Sub())); break;
                case 12 when wire == 2: Outputs.Add(ReadValueInfoName(r.Sub())); break;
                default: r.Skip(wire); break;
            }
        }
    }

    /// <summary>The node whose outputs include <paramref name="value"/>, if any.</summary>
    public OnnxNode? Producer(string value) => Nodes.FirstOrDefault(n => n.Outputs.Contains(value));

    /// <summary>Nodes reading <paramref name="value"/>.</summary>
    public IEnumerable<OnnxNode> Consumers(string value) => Nodes.Where(n => n.Inputs.Contains(value));

    /// <summary>An initializer or the value of a Constant node, by value name.</summary>
    public OnnxTensor? ConstantValue(string value) =>
        Initializers.TryGetValue(value, out var t) ? t
        : Producer(value) is { OpType: "Constant" } c && c.TensorAttributes.TryGetValue("value", out var v) ? v : null;

    private static string ReadValueInfoName(ProtoReader r)
    {
        string name = "";
        while (r.TryReadTag(out int field, out int wire))
        {
            if (field == 1 && wire == 2) name = r.ReadString();
            else r.Skip(wire);
        }
        return name;
    }

    private static OnnxNode ReadNode(ProtoReader r)
    {
        var inputs = new List<string>();
        var outputs = new List<string>();
        string op = "", name = "";
        var tensors = new Dictionary<string, OnnxTensor>();
        var numbers = new Dictionary<string, double>();
        while (r.TryReadTag(out int field, out int wire))
        {
            switch (field)
            {
                case 1 when wire == 2: inputs.Add(r.ReadString()); break;
                case 2 when wire == 2: outputs.Add(r.ReadString()); break;
                case 3 when wire == 2: name = r.ReadString(); break;
                case 4 when wire == 2: op = r.ReadString(); break;
                case 5 when wire == 2: ReadAttribute(r.Sub(), tensors, numbers); break;
                default: r.Skip(wire); break;
            }
        }
        return new OnnxNode(op, name, inputs, outputs, tensors, numbers);
    }

    private static void ReadAttribute(ProtoReader r, Dictionary<string, OnnxTensor> tensors, Dictionary<string, double> numbers)
    {
        string name = "";
        OnnxTensor? tensor = null;
        double? number = null;
        while (r.TryReadTag(out int field, out int wire))
        {
            switch (field)
            {
                case 1 when wire == 2: name = r.ReadString(); break;
                case 2 when wire == 5: number = BitConverter.Int32BitsToSingle((int)r.ReadFixed32()); break;   // f
                case 3 when wire == 0: number = (long)r.ReadVarint(); break;                                    // i
                case 5 when wire == 2: tensor = ReadTensor(r.Sub()); break;                                     // t
                default: r.Skip(wire); break;
            }
        }
        if (tensor is not null) tensors[name] = tensor;
        if (number is double d) numbers[name] = d;
    }

    private static OnnxTensor ReadTensor(ProtoReader r)
    {
        var dims = new List<long>();
        int dataType = 0;
        string name = "";
        (int Offset, int Length)? data = null;
        bool varints = false;
        while (r.TryReadTag(out int field, out int wire))
        {
            switch (field)
            {
                case 1 when wire == 0: dims.Add((long)r.ReadVarint()); break;
                case 1 when wire == 2:
                    var packed = r.Sub();
                    while (!packed.AtEnd) dims.Add((long)packed.ReadVarint());
                    break;
                case 2 when wire == 0: dataType = (int)r.ReadVarint(); break;
                case 4 when wire == 2: data = r.ReadSpan(); break;                       // float_data (packed fixed32)
                case 5 or 7 when wire == 2: data = r.ReadSpan(); varints = true; break;  // int32_data / int64_data (packed)
                case 8 when wire == 2: name = r.ReadString(); break;
                case 9 when wire == 2: data = r.ReadSpan(); varints = false; break;      // raw_data
                case 14 when wire == 0:
                    if (r.ReadVarint() == 1) throw new PeftUserException($"ONNX tensor '{name}' uses external data; only self-contained .onnx files are supported");
                    break;
                default: r.Skip(wire); break;
            }
        }
        var (offset, length) = data ?? (0, 0);
        return new OnnxTensor(name, dims.ToArray(), dataType, r.Buffer, offset, length, varints);
    }
}

/// <summary>Minimal protobuf wire-format reader over a slice of a byte array (offsets stay absolute).</summary>
internal struct ProtoReader(byte[] buffer, int start, int end)
{
    private int _pos = start;

    public readonly byte[] Buffer => buffer;
    public readonly bool AtEnd => _pos >= end;

    public bool TryReadTag(out int field, out int wire)
    {
        field = wire = 0;
        if (AtEnd) return false;
        ulong tag = ReadVarint();
        field = (int)(tag >> 3);
        wire = (int)(tag & 7);
        return true;
    }

    public ulong ReadVarint()
    {
        ulong result = 0;
        for (int shift = 0; shift < 64; shift += 7)
        {
            if (_pos >= end) throw new PeftUserException("truncated protobuf varint", UserErrorKind.Invalid);
            byte b = buffer[_pos++];
            result |= (ulong)(b & 0x7f) << shift;
            if (b < 0x80) return result;
        }
        throw new PeftUserException("malformed protobuf varint", UserErrorKind.Invalid);
    }

    public uint ReadFixed32()
    {
        Need(4);
        uint v = BinaryPrimitives.ReadUInt32LittleEndian(buffer.AsSpan(_pos, 4));
        _pos += 4;
        return v;
    }

    public (int Offset, int Length) ReadSpan()
    {
        ulong len = ReadVarint();
        if (len > (ulong)(end - _pos)) throw new PeftUserException("truncated protobuf field", UserErrorKind.Invalid);
        int offset = _pos;
        _pos += (int)len;
        return (offset, (int)len);
    }

    public ProtoReader Sub()
    {
        var (offset, length) = ReadSpan();
        return new ProtoReader(buffer, offset, offset + length);
    }

    public string ReadString()
    {
        var (offset, length) = ReadSpan();
        return Encoding.UTF8.GetString(buffer, offset, length);
    }

    public void Skip(int wire)
    {
        switch (wire)
        {
            case 0: ReadVarint(); break;
            case 1: Need(8); _pos += 8; break;
            case 2: ReadSpan(); break;
            case 5: Need(4); _pos += 4; break;
            default: throw new PeftUserException($"unsupported protobuf wire type {wire}", UserErrorKind.Invalid);
        }
    }

    private readonly void Need(int n)
    {
        if (end - _pos < n) throw new PeftUserException("truncated protobuf field", UserErrorKind.Invalid);
    }
}
