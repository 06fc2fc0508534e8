from echo.message.v1 import conversation_api_pb2 as _conversation_api_pb2
from echo.message.v1 import live_pb2 as _live_pb2
from echo.message.v1 import member_api_pb2 as _member_api_pb2
from echo.message.v1 import message_api_pb2 as _message_api_pb2
from echo.message.v1 import reaction_api_pb2 as _reaction_api_pb2
from echo.message.v1 import read_state_api_pb2 as _read_state_api_pb2
from echo.message.v1 import report_api_pb2 as _report_api_pb2
from google.protobuf import descriptor as _descriptor
from typing import ClassVar as _ClassVar

DESCRIPTOR: _descriptor.FileDescriptor
